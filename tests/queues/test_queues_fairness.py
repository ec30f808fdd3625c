"""Fairness between partitions with two worker processes (SQLite, PostgreSQL): tenant A has a
thousand runs waiting, tenant B queues one after them; B's run starts within the next
admissions, not behind A's thousand. The wait is measured from B's start() to its step's own
start time, and printed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from procenv import until
from qprocs import Workload, url_for, workload

A_RUNS = 1000
CONCURRENCY = 2
STEP = 0.1  # seconds: A's thousand take 1000 * STEP / CONCURRENCY = 50 s to go through
MAX_WAIT = 2.0  # seconds: a slot frees every STEP / CONCURRENCY; a worker polls every 0.2 s


async def queue_a(work: Workload) -> float:
    """A's thousand runs, started concurrently in batches (the store's group commit writes
    each batch in a few transactions); how long it took."""
    began = time.monotonic()
    async with work.app() as app:
        for first in range(0, A_RUNS, 100):
            await asyncio.gather(
                *(
                    app.start("job", f"a{n:04}", queue="q", partition_key="a", run_id=f"a{n:04}")
                    for n in range(first, first + 100)
                )
            )
    return time.monotonic() - began


async def queue_b(work: Workload) -> float:
    async with work.app() as app:
        queued_at = time.time()
        await app.start("job", "b", queue="q", partition_key="b", run_id="b")
        return queued_at


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_tenant_does_not_wait_behind_another_tenants_thousand(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    queue = f'app.queue("q", concurrency={CONCURRENCY})'
    with workload(tmp_path, queue, url, STEP_SECONDS=str(STEP)) as work:
        took = asyncio.run(queue_a(work))
        work.spawn(2)
        until(lambda: len(work.steps("start")) >= 10, 60, "A's runs going")
        queued_at = asyncio.run(queue_b(work))
        until(lambda: work.first_start("b") is not None, 30, "B's step to start")
        b_started = work.first_start("b")
        assert b_started is not None
        a_before_b = [s for s in work.steps("start") if s.n.startswith("a") and s.at < b_started]
        a_waiting = A_RUNS - len(a_before_b)
    wait = b_started - queued_at
    a_between = [s for s in a_before_b if s.at > queued_at]
    print(
        f"\n{backend}: {A_RUNS} runs of tenant A queued in {took:.2f}s; tenant B's run, "
        f"queued with {a_waiting} of A's still waiting, started {wait * 1000:.0f} ms after "
        f"its start(), after {len(a_between)} of A's steps started in between "
        f"(concurrency {CONCURRENCY}, steps of {STEP}s)"
    )
    assert a_waiting > 900  # B really was queued behind most of A's thousand
    assert wait <= MAX_WAIT
    # The slots already admitted to A when B came (at most CONCURRENCY), and at most one
    # admission round more: B is the first of its partition, so it is next.
    assert len(a_between) <= 2 * CONCURRENCY
