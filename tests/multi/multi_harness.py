"""The parent side of the multi-worker tests: `durable worker` processes that never outlive a
test, the side-effect file they write, and the database read back through the store."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from multi_app import EFFECTS_ENV, SLEEP_ENV, STEPS, expected

from durable import LoggedEvent, decode_record, decode_value
from storage import RunQuery, RunRecord, StorageError, open_store

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


class Effect(NamedTuple):
    run_id: str
    pos: int
    pid: int


def read_effects(path: Path) -> list[Effect]:
    if not path.exists():
        return []
    effects = []
    for line in path.read_text().split("\n")[:-1]:  # skip a line still being written
        run_id, pos, _name, pid = line.split()
        effects.append(Effect(run_id, int(pos), int(pid)))
    return effects


class WorkerProc:
    """One `python -m durable worker multi_app:app` process; stderr goes to a file."""

    def __init__(self, url: str, workdir: Path, name: str, args: list[str], env: dict[str, str]):
        self.name = name
        self.stderr_path = workdir / f"{name}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "durable", "worker", "multi_app:app", "--db", url, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=str(workdir),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return self.stderr_text()[-chars:] or "(empty)"

    def wait_ready(self, timeout: float) -> None:
        """Wait for the start line the CLI prints once the engine is open."""
        stdout = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else ""
        assert "durable worker" in line, (
            f"worker {self.name} ({self.pid}) not ready within {timeout}s: {line!r}; stderr:\n"
            f"{self.tail()}"
        )

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (a graceful stop), SIGKILL if that takes too long; returns the exit code."""
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)  # a paused process can't act on SIGTERM
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        for stream in (self.proc.stdout, self._stderr):
            if stream is not None and not stream.closed:
                stream.close()


@dataclass
class Workers:
    url: str
    workdir: Path
    effects: Path
    step_sleep: float
    lease_ttl: float
    poll_interval: float = 0.2
    max_concurrent_runs: int = 50

    def __post_init__(self) -> None:
        self.all: list[WorkerProc] = []

    def spawn(self, name: str) -> WorkerProc:
        path = os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])
        env = {
            **os.environ,
            "PYTHONPATH": path,
            EFFECTS_ENV: str(self.effects),
            SLEEP_ENV: str(self.step_sleep),
        }
        args = [
            "--lease-ttl", str(self.lease_ttl),
            "--poll-interval", str(self.poll_interval),
            "--max-concurrent-runs", str(self.max_concurrent_runs),
            "--log-level", "info",
        ]  # fmt: skip
        worker = WorkerProc(self.url, self.workdir, name, args, env)
        self.all.append(worker)
        return worker

    def check_alive(self) -> None:
        for w in self.all:
            if w.proc.returncode is None and not w.alive():
                raise AssertionError(
                    f"worker {w.name} ({w.pid}) exited with {w.proc.returncode}:\n{w.tail()}"
                )

    def kill_all(self) -> None:
        for w in self.all:
            w.kill()


@contextmanager
def workers(**kwargs: Any) -> Iterator[Workers]:
    pool = Workers(**kwargs)
    try:
        yield pool
    finally:
        pool.kill_all()  # whatever happened: no worker outlives the test


def wait_until(what: str, cond: Callable[[], bool], timeout: float, every: float = 0.05) -> float:
    """Poll cond until true; returns the time.monotonic() at which it was seen true."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
    return time.monotonic()


# -- the database, read back --------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    runs: dict[str, RunRecord]
    logs: dict[str, list[LoggedEvent]]


def statuses(url: str) -> Counter[str]:
    """Run statuses now; Counter({"unavailable": 1}) while the database can't be reached."""
    try:
        return asyncio.run(_statuses(url))
    except (StorageError, OSError):
        return Counter({"unavailable": 1})


async def _statuses(url: str) -> Counter[str]:
    store = open_store(url)
    await store.open()
    try:
        return Counter(r.status for r in await store.list_runs(RunQuery(limit=100_000)))
    finally:
        await store.close()


def read_snapshot(url: str) -> Snapshot:
    return asyncio.run(_read_snapshot(url))


async def _read_snapshot(url: str) -> Snapshot:
    store = open_store(url)
    await store.open()
    try:
        rows = await store.list_runs(RunQuery(limit=100_000))
        logs = {
            r.run_id: [decode_record(e) for e in await store.read_events(r.run_id)] for r in rows
        }
        return Snapshot({r.run_id: r for r in rows}, logs)
    finally:
        await store.close()


def check_runs(snap: Snapshot, inputs: dict[str, int]) -> None:
    """Every run succeeded with the right result, and its gap-free log records each of the
    five steps completed exactly once (and nothing failed)."""
    assert set(snap.runs) == set(inputs), "runs lost or unexpected runs"
    for run_id, x in inputs.items():
        row = snap.runs[run_id]
        assert row.status == "succeeded", f"run {run_id} is {row.status}"
        assert row.result is not None and decode_value(row.result) == expected(x), run_id
        events = snap.logs[run_id]
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), f"{run_id}: gaps"
        types = [e.type for e in events]
        assert types[0] == "RunStarted" and types[-1] == "RunCompleted", f"{run_id}: {types}"
        assert types.count("RunCompleted") == 1 and "StepFailed" not in types, f"{run_id}: {types}"
        done: Counter[int] = Counter()
        for e in events:
            if e.type == "StepCompleted":
                ev: Any = e.event
                done[ev.pos] += 1
        assert done == Counter(range(STEPS)), f"{run_id}: StepCompleted per position {done}"


def sessions_in_transaction(url: str) -> list[str]:
    """Server sessions (other than ours) holding a transaction open: "pid state: query"."""
    return asyncio.run(_sessions_in_transaction(url))


async def _sessions_in_transaction(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url.split("?", 1)[0])
    try:
        rows = await conn.fetch(
            "SELECT pid, state, query FROM pg_stat_activity "
            "WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()"
        )
        return [f"{r['pid']} {r['state']}: {r['query'][:80]}" for r in rows]
    finally:
        await conn.close()
