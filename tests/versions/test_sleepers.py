"""10,000 sleeping runs are only rows: a worker process executing them parks each one once it
sleeps (lease given back, due time on the row), so its memory stays flat as they pile up; a new
worker started after a restart wakes every one of them on time, not before."""

from __future__ import annotations

import asyncio
import sqlite3
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


@pytest.mark.slow
def test_ten_thousand_sleeping_runs_are_rows_and_wake_on_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = Env(tmp_path, WORKFLOWS)
    db = tmp_path / "runs.db"
    monkeypatch.setenv("DURABLE_DATABASE_URL", env.db)
    monkeypatch.syspath_prepend(str(tmp_path))
    began = time.time()
    wake_at = began + 90.0  # past the time it takes to start and park them all here
    parked = "status = 'running' AND owner IS NULL AND ready_at IS NOT NULL"
    worker = env.spawn("")
    try:
        asyncio.run(start_runs(env.db, 0, 1_000, wake_at))
        until(lambda: count(db, parked) == 1_000, timeout=120, why="1,000 parked runs")
        rss_1k = rss_kib(worker.pid)
        asyncio.run(start_runs(env.db, 1_000, RUNS, wake_at))
        until(lambda: count(db, parked) == RUNS, timeout=300, why="10,000 parked runs")
        rss_10k = rss_kib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    print(
        f"worker RSS: {rss_1k} KiB with 1,000 sleeping runs, {rss_10k} KiB with {RUNS:,} "
        f"(started and parked in {time.time() - began:.1f} s)"
    )
    # 9,000 more sleeping runs may not cost the worker memory per run (an executor with its
    # state costs tens of KiB): under 10 MiB in all, i.e. < 1.2 KiB each.
    assert rss_10k - rss_1k < 10 * 1024, (rss_1k, rss_10k)
    assert time.time() < wake_at - 5, "starting the runs took too long for this test's timing"

    worker = env.spawn("")  # the restart
    try:
        until(
            lambda: count(db, "status = 'succeeded'") == RUNS,
            timeout=wake_at - time.time() + 120,
            why="every run to wake and finish",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    with sqlite3.connect(db) as conn:
        finished = [r[0] for r in conn.execute("SELECT finished_at FROM durable_runs")]
    assert len(finished) == RUNS
    early = [f for f in finished if f < wake_at]
    assert not early, f"{len(early)} runs woke early"
    late = max(finished) - wake_at
    print(f"all {RUNS:,} woke within {late:.1f} s of their due time")
    assert late < 60, late
