"""Priorities with three worker processes on a queue of concurrency 1 (SQLite, PostgreSQL):
runs queued later with a higher priority are admitted, and start, before the lower ones still
waiting; from the admission times the claims stored and from the steps' own start times."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from procenv import until
from qprocs import Workload, admissions, url_for, wait_all_ended, workload

LOWS = [f"low{n}" for n in range(6)]
HIGHS = ["high0", "high1"]


async def start(work: Workload, names: list[str], priority: int) -> dict[str, float]:
    """Start the runs (run id = name); when each start() returned (its run is queued)."""
    queued: dict[str, float] = {}
    async with work.app() as app:
        for name in names:
            await app.start("job", name, queue="one", priority=priority, run_id=name)
            queued[name] = time.time()
    return queued


async def finish(work: Workload) -> list[str]:
    async with work.app() as app:
        return await wait_all_ended(app, "job", len(LOWS) + len(HIGHS), timeout=90)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_later_higher_priority_runs_start_before_waiting_lower_ones(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    with workload(tmp_path, 'app.queue("one", concurrency=1)', url, STEP_SECONDS="0.3") as work:
        asyncio.run(start(work, LOWS, 0))
        work.spawn(3)
        until(lambda: len(work.steps("start")) >= 1, 60, "the first low run to start")
        queued = asyncio.run(start(work, HIGHS, 5))
        assert asyncio.run(finish(work)) == ["succeeded"] * (len(LOWS) + len(HIGHS))
        admitted = asyncio.run(admissions(url, LOWS + HIGHS))
        started = {s.n: s.at for s in work.steps("start")}
        pids = {s.pid for s in work.steps("start")}
    order = sorted(started, key=started.__getitem__)
    print(f"\n{backend}: start order {order} over {len(pids)} workers")
    # No low run was admitted after a high one was queued while that high one still waited.
    for high in HIGHS:
        for low in LOWS:
            if admitted[low] > queued[high]:
                assert admitted[low] > admitted[high], (low, high, admitted)
    # From the steps' clocks: once the high runs were queued, at most the one low run already
    # admitted (concurrency 1) started before them; the other lows, still waiting, after.
    queued_by = max(queued.values())
    last_high = max(started[h] for h in HIGHS)
    between = [low for low in LOWS if queued_by < started[low] < last_high]
    assert len(between) <= 1, order
    assert sum(started[low] > last_high for low in LOWS) >= 3, order  # the check could fail
