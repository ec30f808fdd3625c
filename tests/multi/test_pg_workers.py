"""Many real `durable worker` processes on one real PostgreSQL database: the work is shared,
each step's result is recorded once, a paused "zombie" worker is fenced off, a killed worker's
runs are finished by another after its lease expires, and the workers ride out a restart of
the database server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cirules import unavailable
from multi_app import STEPS, build_app
from multi_harness import (
    HERE,
    Workers,
    check_runs,
    read_effects,
    read_snapshot,
    sessions_in_transaction,
    statuses,
    wait_until,
    workers,
)

pytestmark = pytest.mark.slow


def start_runs(url: str, inputs: dict[str, int]) -> None:
    """Start the runs from a client process that executes none (App(worker=False))."""

    async def go() -> None:
        client = build_app(url, worker=False)
        async with client:
            for run_id, x in inputs.items():
                await client.start("five", x, run_id=run_id)

    asyncio.run(go())


def wait_all_succeeded(pool: Workers, n: int, timeout: float) -> float:
    def done() -> bool:
        pool.check_alive()
        return statuses(pool.url)["succeeded"] == n

    return wait_until(f"{n} runs to succeed", done, timeout, every=0.1)


def test_four_workers_share_500_runs_and_record_each_step_once(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects"
    inputs = {f"r{i:03d}": i for i in range(500)}
    with workers(
        url=pg_fresh_url, workdir=tmp_path, effects=effects, step_sleep=0.01, lease_ttl=15.0
    ) as pool:
        procs = [pool.spawn(f"w{i}") for i in range(4)]
        for w in procs:
            w.wait_ready(60)
        start_runs(pg_fresh_url, inputs)
        wait_all_succeeded(pool, len(inputs), timeout=120)
        for w in procs:
            assert w.stop() == 0, w.tail()
    check_runs(read_snapshot(pg_fresh_url), inputs)
    lines = read_effects(effects)
    per_step = Counter((e.run_id, e.pos) for e in lines)
    assert set(per_step) == {(r, p) for r in inputs for p in range(STEPS)}
    assert set(per_step.values()) == {1}, "a step body ran more than once without any crash"
    runs_per_pid = Counter(e.pid for e in lines if e.pos == 0)
    assert set(runs_per_pid) == {w.pid for w in procs}, f"runs per worker: {runs_per_pid}"


def test_a_paused_zombie_worker_is_fenced_off(pg_fresh_url: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    lease_ttl = 2.0
    inputs = {f"z{i}": i for i in range(10)}
    with workers(
        url=pg_fresh_url, workdir=tmp_path, effects=effects, step_sleep=1.0, lease_ttl=lease_ttl
    ) as pool:
        zombie = pool.spawn("zombie")
        zombie.wait_ready(60)
        start_runs(pg_fresh_url, inputs)
        # Every run's first step has begun in the zombie and sleeps for a second: in flight.
        wait_until(
            "the zombie to begin every run",
            lambda: len({e.run_id for e in read_effects(effects) if e.pid == zombie.pid}) == 10,
            timeout=30,
            every=0.01,
        )
        zombie.signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        other = pool.spawn("other")
        other.wait_ready(60)
        try:
            wait_all_succeeded(pool, len(inputs), timeout=30)
        except AssertionError as exc:
            # Seen once in ~12 runs: only 3 of the 10 runs taken over. Say whether the paused
            # zombie holds a transaction open (row locks the claim's SKIP LOCKED passes over).
            open_tx = sessions_in_transaction(pg_fresh_url)
            raise AssertionError(f"{exc}; {statuses(pg_fresh_url)}; open: {open_tx}") from None
        assert time.monotonic() - paused_at > lease_ttl  # taken over only once the lease lapsed
        zombie.signal(signal.SIGCONT)  # its steps return now and it tries to record them
        wait_until(
            "the zombie to report a lease lost",
            lambda: "lease lost" in zombie.stderr_text(),
            timeout=15,
        )
        time.sleep(1.0)  # let every stale write it attempts be refused
        assert zombie.alive(), zombie.tail()
        assert zombie.stop() == 0, zombie.tail()
        assert other.stop() == 0, other.tail()
    check_runs(read_snapshot(pg_fresh_url), inputs)  # nothing of the zombie's got recorded
    stale = zombie.stderr_text().count("lease lost")
    assert stale >= 1
    assert "lease lost" not in other.stderr_text()
    by_pid = Counter(e.pid for e in read_effects(effects))
    assert by_pid[other.pid] == 10 * STEPS  # the other worker ran every step again


def test_a_killed_workers_runs_finish_within_lease_expiry(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects"
    lease_ttl = 2.0
    inputs = {f"k{i:02d}": i for i in range(20)}
    with workers(
        url=pg_fresh_url,
        workdir=tmp_path,
        effects=effects,
        step_sleep=0.3,
        lease_ttl=lease_ttl,
        max_concurrent_runs=10,
    ) as pool:
        victim, survivor = pool.spawn("victim"), pool.spawn("survivor")
        victim.wait_ready(60)
        survivor.wait_ready(60)
        start_runs(pg_fresh_url, inputs)
        wait_until(
            "the victim to be in the middle of its runs",
            lambda: any(e.pid == victim.pid and e.pos >= 1 for e in read_effects(effects)),
            timeout=30,
            every=0.01,
        )
        victim.kill()
        killed_at = time.monotonic()
        victim_runs = {e.run_id for e in read_effects(effects) if e.pid == victim.pid}
        unfinished = statuses(pg_fresh_url)["running"] + statuses(pg_fresh_url)["pending"]
        assert unfinished > 0
        done_at = wait_all_succeeded(pool, len(inputs), timeout=60)
        assert done_at - killed_at <= lease_ttl + 8, f"took {done_at - killed_at:.1f}s"
        assert survivor.stop() == 0, survivor.tail()
    check_runs(read_snapshot(pg_fresh_url), inputs)
    lines = read_effects(effects)
    finished_by_survivor = {e.run_id for e in lines if e.pid == survivor.pid and e.pos == STEPS - 1}
    assert victim_runs and victim_runs <= finished_by_survivor, "the survivor took them over"
    per_step = Counter((e.run_id, e.pos) for e in lines)
    assert max(per_step.values()) <= 2  # at most the killed attempt and the one after it


PGSERVER = HERE.parent / "pgserver.py"


class DedicatedServer:
    """A PostgreSQL server of this test's own, via tests/pgserver.py's start/stop CLI and its
    state file (url, bindir, root: the data directory's parent, user: who runs it)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        proc = subprocess.run(
            [sys.executable, str(PGSERVER), "start", str(state)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            self.stop()
            unavailable(f"no PostgreSQL server: {proc.stderr.strip()}")
        info = json.loads(state.read_text())
        self.url: str = info["url"]
        self.bindir: str = info["bindir"]
        self.root: str = info["root"]
        self.user: str | None = info["user"]

    def stop(self) -> None:
        subprocess.run(
            [sys.executable, str(PGSERVER), "stop", str(self.state)],
            capture_output=True,
            timeout=120,
        )

    def pg_ctl(self, *args: str) -> None:
        datadir = str(Path(self.root) / "data")
        cmd = [f"{self.bindir}/pg_ctl", *args, "-D", datadir, "-w", "-t", "60"]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def restart_immediately(self, down: float) -> None:
        """Crash-stop the server (no checkpoint, clients cut off), then start it on the same
        port with the options tests/pgserver.py starts it with."""
        self.pg_ctl("stop", "-m", "immediate")
        time.sleep(down)
        options = (
            f"-h 127.0.0.1 -p {urlsplit(self.url).port} -k {self.root} -c fsync=on "
            "-c synchronous_commit=on -c max_connections=200"
        )
        self.pg_ctl("start", "-l", str(Path(self.root) / "server.log"), "-o", options)


def test_workers_ride_out_a_postgres_restart(tmp_path: Path) -> None:
    server = DedicatedServer(tmp_path / "pg-state.json")  # the session's server must stay up
    try:
        url = server.url
        effects = tmp_path / "effects"
        inputs = {f"p{i:03d}": i for i in range(200)}
        with workers(
            url=url, workdir=tmp_path, effects=effects, step_sleep=0.05, lease_ttl=3.0
        ) as pool:
            procs = [pool.spawn(f"w{i}") for i in range(3)]
            for w in procs:
                w.wait_ready(60)
            start_runs(url, inputs)
            wait_until("some runs to finish", lambda: statuses(url)["succeeded"] >= 20, 60)
            before = statuses(url)
            server.restart_immediately(down=2.0)
            assert before["succeeded"] < len(inputs), f"no load left at the restart: {before}"
            wait_all_succeeded(pool, len(inputs), timeout=90)  # fails early if a worker died
            assert all(w.alive() for w in procs)
        check_runs(read_snapshot(url), inputs)
        per_step = Counter((e.run_id, e.pos) for e in read_effects(effects))
        assert set(per_step) == {(r, p) for r in inputs for p in range(STEPS)}
    finally:
        server.stop()
