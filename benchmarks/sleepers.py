"""Sleeping runs on one `durable worker` process and SQLite: what parking them costs in time and
memory, and how a new worker wakes them after a restart (the figures
tests/versions/test_sleepers.py used to assert; the test keeps only bounds a slow machine meets).

    python benchmarks/sleepers.py                  # 10,000 runs
    python benchmarks/sleepers.py --quick          # 2,000
    python benchmarks/sleepers.py --runs N --json PATH

Each phase on a fresh database file and a fresh worker process (poll 0.2 s, park_after 0.5 s),
the runs started from this process 500 at a time (gathered), as the test starts them:

- plain, the peer: N runs that end at once, started into the worker; until all succeeded.
- park: N runs that sleep until one due time, started into the worker; until all are parked
  (lease given back, due time on the row). The worker's RSS with a tenth of them parked and
  with all: the growth per further parked run. The due time is 2x the plain phase's time
  ahead (at least 20 s), so that all are parked before it on this machine.
- wake: that worker stopped (SIGTERM) and a new one started, which wakes the N runs when due:
  how late after the due time they ended (first, median, last), none early, and runs ended per
  second from the due time, against the plain phase's runs per second.
- held, the peer for memory: 1,000 runs (the worker's max_concurrent_runs) of the same sleeper
  on a worker whose park_after is above their wait, so that each stays in memory; the growth
  per further run from 100 to 1,000.

Not a test: the figures depend on the machine and on what else runs on it. Measure a branch by
putting its tree first on PYTHONPATH (the workers inherit it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKFLOWS = """
import datetime as dt
import os
from sdk import App, Context

app = App(
    os.environ["DURABLE_DATABASE_URL"],
    poll_interval=0.2,
    lease_ttl=5.0,
    park_after=float(os.environ.get("PARK_AFTER", "0.5")),
)

@app.workflow(name="sleeper")
async def sleeper(ctx: Context, wake_at: float) -> float:
    await ctx.sleep_until(dt.datetime.fromtimestamp(wake_at, dt.UTC))
    return ctx.now().timestamp()

@app.workflow(name="plain")
async def plain(ctx: Context, wake_at: float) -> float:
    return wake_at
"""
PARKED = "status = 'running' AND owner IS NULL AND ready_at IS NOT NULL"
HELD = "status = 'running' AND owner IS NOT NULL AND last_seq >= 2"  # its timer started
HELD_RUNS = 1000  # WorkerOptions.max_concurrent_runs: a worker holds no more at once


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        (tmp / "wfmod.py").write_text(textwrap.dedent(WORKFLOWS))
        os.environ.setdefault("DURABLE_DATABASE_URL", f"sqlite:///{tmp / 'unused.db'}")
        sys.path.insert(0, str(tmp))

    def spawn(self, db: Path, park_after: float = 0.5) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DURABLE_DATABASE_URL": f"sqlite:///{db}",
            "PARK_AFTER": str(park_after),
            # The module, then the same durable as this process's (PYTHONPATH: a branch's tree).
            "PYTHONPATH": os.pathsep.join([str(self.tmp), os.environ.get("PYTHONPATH", "")]),
        }
        log = open(self.tmp / f"{db.stem}-worker.log", "ab")  # noqa: SIM115
        try:
            command = [sys.executable, "-m", "durable", "worker", "wfmod:app"]
            return subprocess.Popen(
                [*command, "--log-level", "warning"], cwd=self.tmp, env=env, stdout=log, stderr=log
            )
        finally:
            log.close()

    async def start(self, db: Path, workflow: str, ids: range, wake_at: float) -> None:
        import wfmod  # type: ignore[import-not-found]  # written into self.tmp

        from sdk import App

        async with App(f"sqlite:///{db}", worker=False) as app:
            app.registry._workflows.update(wfmod.app.registry._workflows)
            for lo in range(ids.start, ids.stop, 500):
                batch = range(lo, min(ids.stop, lo + 500))
                await asyncio.gather(
                    *(app.start(workflow, wake_at, run_id=f"{workflow}{i}") for i in batch)
                )


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=120)


def count(db: Path, where: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        found: int = conn.execute(f"SELECT count(*) FROM durable_runs WHERE {where}").fetchone()[0]
        return found


def until(what: Callable[[], bool], deadline: float, why: str) -> bool:
    while time.time() < deadline:
        if what():
            return True
        time.sleep(0.05)
    print(f"  gave up waiting for {why}", file=sys.stderr)
    return False


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def plain(bench: Bench, n: int) -> float:
    db = bench.tmp / "plain.db"
    worker = bench.spawn(db)
    try:
        began = time.time()
        asyncio.run(bench.start(db, "plain", range(n), 0.0))
        if not until(lambda: count(db, "status = 'succeeded'") == n, began + 1800, "plain"):
            raise SystemExit("the plain runs did not finish in 30 minutes")
        return time.time() - began
    finally:
        stop(worker)


def park_and_wake(bench: Bench, n: int, plain_seconds: float) -> dict[str, Any]:
    db = bench.tmp / "park.db"
    tenth = n // 10
    worker = bench.spawn(db)
    try:
        began = time.time()
        due = began + max(20.0, 2 * plain_seconds)
        asyncio.run(bench.start(db, "sleeper", range(tenth), due))
        if not until(lambda: count(db, PARKED) == tenth, due, f"{tenth:,} parked"):
            raise SystemExit("not even a tenth of the runs parked before they were due")
        rss_tenth = rss_kib(worker.pid)
        asyncio.run(bench.start(db, "sleeper", range(tenth, n), due))
        all_parked = until(lambda: count(db, PARKED) == n, due, f"{n:,} parked")
        parked_seconds = time.time() - began
        rss_all = rss_kib(worker.pid)
    finally:
        stop(worker)
    figures: dict[str, Any] = {
        "park_seconds": parked_seconds,
        "rss_kib": [rss_tenth, rss_all],
        "parked_kib_per_run": (rss_all - rss_tenth) / (n - tenth),
        "due_after_start": due - began,
    }
    if not all_parked or count(db, "status != 'running'"):
        figures["wake"] = "not measured: the runs were due before all were parked"
        return figures
    worker = bench.spawn(db)  # the restart
    try:
        done = until(lambda: count(db, "status = 'succeeded'") == n, due + 1800, "every wake")
    finally:
        stop(worker)
    if not done:
        raise SystemExit("the runs did not all wake and end within 30 minutes of their due time")
    with sqlite3.connect(db) as conn:
        ended = sorted(row[0] for row in conn.execute("SELECT finished_at FROM durable_runs"))
    late = [at - due for at in ended]
    figures["wake"] = {
        "late_first": late[0],
        "late_median": statistics.median(late),
        "late_last": late[-1],
        "early": sum(1 for x in late if x < 0),
        "runs_per_second": n / late[-1] if late[-1] > 0 else float("inf"),
    }
    return figures


def held(bench: Bench) -> dict[str, Any]:
    db = bench.tmp / "held.db"
    first = HELD_RUNS // 10
    worker = bench.spawn(db, park_after=3600.0)
    try:
        due = time.time() + 1200.0  # under park_after: every run waits in memory
        asyncio.run(bench.start(db, "sleeper", range(first), due))
        if not until(lambda: count(db, HELD) == first, due, f"{first} held"):
            raise SystemExit("the held runs did not start")
        rss_first = rss_kib(worker.pid)
        asyncio.run(bench.start(db, "sleeper", range(first, HELD_RUNS), due))
        if not until(lambda: count(db, HELD) == HELD_RUNS, due, f"{HELD_RUNS} held"):
            raise SystemExit("the held runs did not start")
        rss_all = rss_kib(worker.pid)
    finally:
        stop(worker)
    return {
        "rss_kib": [rss_first, rss_all],
        "held_kib_per_run": (rss_all - rss_first) / (HELD_RUNS - first),
    }


def report(n: int, plain_seconds: float, park: dict[str, Any], kept: dict[str, Any]) -> None:
    parked_per_run, held_per_run = park["parked_kib_per_run"], kept["held_kib_per_run"]
    print(f"{n:,} sleeping runs on one `durable worker` process and SQLite")
    print(f"plain runs (peer):   started and ended in   {plain_seconds:6.1f} s")
    print(
        f"sleeping runs:       started and parked in  {park['park_seconds']:6.1f} s "
        f"({park['park_seconds'] / plain_seconds:.2f}x the plain runs')"
    )
    a, b = park["rss_kib"]
    print(
        f"memory, parked:      {parked_per_run:6.2f} KiB per further run "
        f"({a:,} KiB with {n // 10:,}, {b:,} KiB with {n:,})"
    )
    c, d = kept["rss_kib"]
    ratio = f"{held_per_run / parked_per_run:.0f}x" if parked_per_run > 0 else "n/a"
    print(
        f"memory, held (peer): {held_per_run:6.2f} KiB per further run "
        f"({c:,} KiB with {HELD_RUNS // 10}, {d:,} KiB with {HELD_RUNS:,}): "
        f"a held run costs {ratio} a parked one"
    )
    wake = park["wake"]
    if isinstance(wake, str):
        print(f"wake after a restart: {wake}")
        return
    print(
        f"wake after a restart (due {park['due_after_start']:.0f} s after the start): ended "
        f"{wake['late_first']:.2f} s (first), {wake['late_median']:.1f} s (median), "
        f"{wake['late_last']:.1f} s (last) after the due time, {wake['early']} early; "
        f"{wake['runs_per_second']:.0f} runs/s, {wake['runs_per_second'] * plain_seconds / n:.2f}x "
        f"the plain runs' rate"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    n = 2_000 if args.quick else args.runs
    if n < 10:
        parser.error("--runs must be at least 10")
    with tempfile.TemporaryDirectory(prefix="durable-sleepers-") as tmp:
        bench = Bench(Path(tmp))
        plain_seconds = plain(bench, n)
        park = park_and_wake(bench, n, plain_seconds)
        kept = held(bench)
    report(n, plain_seconds, park, kept)
    if args.json:
        figures = {"runs": n, "plain_seconds": plain_seconds, "park": park, "held": kept}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
