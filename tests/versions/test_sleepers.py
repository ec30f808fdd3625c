"""10,000 sleeping runs are only rows: a worker process executing them parks each one once it
sleeps (lease given back, due time on the row), so its memory stays flat as they pile up; a new
worker started after a restart wakes every one that is due, none before its time, and leaves
the others parked.

Behaviour only, with bounds a slow machine meets: how fast runs park and wake, and exactly how
much memory they take, are benchmarks/sleepers.py's figures. The runs' due time is not a fixed
budget either: it is set from how long this machine took for the first 1,000 runs, in this run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from procenv import Env, until

from sdk import App

WORKFLOWS = """
import datetime as dt
import os
from sdk import App, Context

app = App(os.environ["DURABLE_DATABASE_URL"], poll_interval=0.2, lease_ttl=5.0, park_after=0.5)

@app.workflow(name="sleeper")
async def sleeper(ctx: Context, wake_at: float) -> float:
    await ctx.sleep_until(dt.datetime.fromtimestamp(wake_at, dt.UTC))
    return ctx.now().timestamp()
"""

RUNS = 10_000
# The first 1,000 sleep for a day: the memory baseline, and the measure of this machine's pace.
BASELINE = 1_000
DAY = 86_400.0
# The other 9,000 are due when 3 times that pace has passed for each (and at least 30 s): all
# parked before then unless the machine slows down threefold in the middle of the test.
PACE_MARGIN = 3.0
# Memory: 9,000 more parked runs grow the worker by ~4 MiB (0.4 KiB each), 9,000 held in memory
# (executor and state) would by ~120 MiB (14 KiB each; benchmarks/sleepers.py), and the leak of
# a278abb (resumes' garbage never collected) grew it by 160 MB per 10,000. The bound, 3.6 KiB a
# run, is 8 times the usual growth and misses neither.
MAX_GROWTH_KIB = 32 * 1024
# The wake is driven by the due time (a poll of 0.2 s), not by something slower: the first run
# ends within this of it however loaded the machine (all 9,000 take what they take).
FIRST_WAKE_BOUND = 60.0
PARKED = "status = 'running' AND owner IS NULL AND ready_at IS NOT NULL"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def count(db: Path, where: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        found: int = conn.execute(f"SELECT count(*) FROM durable_runs WHERE {where}").fetchone()[0]
        return found


async def start_runs(url: str, first: int, last: int, wake_at: float) -> None:
    import wfmod  # type: ignore[import-not-found]  # written into the test's directory

    async with App(url, worker=False) as app:
        app.registry._workflows.update(wfmod.app.registry._workflows)
        for lo in range(first, last, 500):
            await asyncio.gather(
                *(
                    app.start("sleeper", wake_at, run_id=f"s{i}")
                    for i in range(lo, min(last, lo + 500))
                )
            )


def stop(worker: subprocess.Popen[str]) -> None:
    worker.terminate()
    worker.wait(timeout=60)


@pytest.mark.slow
def test_ten_thousand_sleeping_runs_are_rows_and_wake_on_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env(tmp_path, WORKFLOWS)
    db = tmp_path / "runs.db"
    monkeypatch.setenv("DURABLE_DATABASE_URL", env.db)
    monkeypatch.syspath_prepend(str(tmp_path))
    began = time.time()
    worker = env.spawn("")
    try:
        asyncio.run(start_runs(env.db, 0, BASELINE, began + DAY))
        until(lambda: count(db, PARKED) == BASELINE, timeout=600, why="1,000 parked runs")
        rss_1k = rss_kib(worker.pid)
        pace = (time.time() - began) / BASELINE  # the worker's start included: generous
        wake_at = time.time() + max(30.0, PACE_MARGIN * pace * (RUNS - BASELINE))
        asyncio.run(start_runs(env.db, BASELINE, RUNS, wake_at))
        until(
            lambda: count(db, PARKED) == RUNS,
            timeout=max(1.0, wake_at - time.time()),
            why=f"{RUNS:,} parked runs before the due time ({PACE_MARGIN}x the first 1,000's "
            f"pace of {pace * 1000:.1f} ms a run)",
        )
        rss_10k = rss_kib(worker.pid)
    finally:
        stop(worker)
    print(
        f"worker RSS: {rss_1k} KiB with {BASELINE:,} sleeping runs, {rss_10k} KiB with {RUNS:,};"
        f" due {wake_at - began:.0f} s after the start"
    )
    assert rss_10k - rss_1k < MAX_GROWTH_KIB, (rss_1k, rss_10k)
    # The restart's premise: the stopped worker left every run parked, none woken.
    assert (count(db, PARKED), count(db, "status != 'running'")) == (RUNS, 0)

    worker = env.spawn("")  # the restart
    try:
        until(
            lambda: count(db, "status = 'succeeded'") == RUNS - BASELINE,
            timeout=wake_at - time.time() + 900,
            why="every due run to wake and finish",
        )
    finally:
        stop(worker)
    with sqlite3.connect(db) as conn:
        ended = dict(conn.execute("SELECT run_id, finished_at FROM durable_runs"))
        asleep = dict(conn.execute(f"SELECT run_id, ready_at FROM durable_runs WHERE {PARKED}"))
    due = {f"s{i}" for i in range(BASELINE, RUNS)}
    finished = sorted(f for run_id, f in ended.items() if run_id in due)
    assert len(finished) == RUNS - BASELINE and None not in finished
    early = [f for f in finished if f < wake_at]
    assert not early, f"{len(early)} runs woke early"
    print(
        f"{len(finished):,} woke {finished[0] - wake_at:.1f} s (first) to "
        f"{finished[-1] - wake_at:.1f} s (last) after their due time"
    )
    assert finished[0] - wake_at < FIRST_WAKE_BOUND
    # The day-long sleepers: still parked, due when they said, and the new worker left them.
    assert sorted(asleep) == sorted(f"s{i}" for i in range(BASELINE))
    assert all(abs(at - (began + DAY)) < 1e-3 for at in asleep.values())
