"""A rate-limited queue with three worker processes (SQLite, PostgreSQL): no window of the
period holds more than the limit's admissions (from the times the claims stored) or step starts
(from the steps' own clocks), and the throughput stays close to the limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from qprocs import Workload, admissions, url_for, wait_all_ended, workload

LIMIT, PERIOD = 5, 1.0
RUNS = 25
POLL = 0.2  # the workers' poll_interval (qprocs.WORKFLOWS)


def most_in_a_window(times: list[float], period: float) -> int:
    """The most times inside any half-open window (t - period, t]."""
    times = sorted(times)
    best = 0
    for i, t in enumerate(times):
        best = max(best, sum(1 for u in times[: i + 1] if u > t - period))
    return best


async def start_runs(work: Workload) -> list[str]:
    async with work.app() as app:
        for n in range(RUNS):  # the run id is the step's input: its effects name the run
            await app.start("job", f"p{n:02}", queue="paced", run_id=f"p{n:02}")
    return [f"p{n:02}" for n in range(RUNS)]


async def finish(work: Workload) -> list[str]:
    async with work.app() as app:
        return await wait_all_ended(app, "job", RUNS, timeout=90)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rate_limit_across_workers(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    queue = f'app.queue("paced", rate_limit=({LIMIT}, {PERIOD}))'
    with workload(tmp_path, queue, url, STEP_SECONDS="0.05") as work:
        run_ids = asyncio.run(start_runs(work))  # all waiting before any worker is up
        work.spawn(3)
        assert asyncio.run(finish(work)) == ["succeeded"] * RUNS
        admitted_at = asyncio.run(admissions(url, run_ids))
        started_at = {s.n: s.at for s in work.steps("start")}
    assert sorted(started_at) == run_ids
    admitted, starts = sorted(admitted_at.values()), sorted(started_at.values())
    pids = {s.pid for s in work.steps("start")}
    # The limit, exactly, on the admission times (one clock: the admitting worker's).
    assert most_in_a_window(admitted, PERIOD) == LIMIT
    # The same from the steps' own start times: a step starts a little after its admission
    # (claim commit, then the executor), so the window is shortened by that delay's spread.
    delays = [started_at[r] - admitted_at[r] for r in run_ids]
    spread = max(delays) - min(delays)
    in_window = most_in_a_window(starts, PERIOD - spread)
    # Throughput: after the first window's LIMIT, each window's LIMIT is admitted when the
    # window moves past the previous batch and a worker polls: at most PERIOD + one poll
    # interval + a claim (0.3 s on a loaded 2-core machine) per batch. Below that bound, the
    # workers would be leaving the limit unused.
    batches = RUNS // LIMIT - 1
    span = admitted[-1] - admitted[0]
    rate = (RUNS - LIMIT) / span
    print(
        f"\n{backend}: {RUNS} runs at rate_limit=({LIMIT}, {PERIOD}) over {len(pids)} workers: "
        f"admissions span {span:.2f}s ({rate:.2f}/s, limit {LIMIT / PERIOD:.2f}/s); "
        f"step starts span {starts[-1] - starts[0]:.2f}s; admission-to-start spread "
        f"{spread * 1000:.0f} ms; most starts in {PERIOD - spread:.2f}s: {in_window}"
    )
    assert in_window <= LIMIT
    assert spread < 0.5, "steps started long after their admissions"
    assert batches * PERIOD <= span <= batches * (PERIOD + POLL + 0.3), span
