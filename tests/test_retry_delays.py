"""RetryPolicy's schedule, value by value: exponential up to and then held at max_delay,
linear (1x, 2x, 3x, ... then capped), fixed; and the same delays recorded by a real run as
each failed attempt's next_attempt_at."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from durable import events as ev
from sdk import App, Context, RetryPolicy

EXPONENTIAL = RetryPolicy(max_attempts=5, initial_delay=0.02, backoff=2.0, max_delay=0.1)
LINEAR = RetryPolicy(max_attempts=5, initial_delay=0.03, max_delay=0.1, linear=True)
FIXED = RetryPolicy(max_attempts=5, initial_delay=0.03, backoff=1.0, max_delay=0.1)
# The delay after each failed attempt 1..4 (the 5th is the last: no next attempt).
SCHEDULES = {
    "exponential": (EXPONENTIAL, [0.02, 0.04, 0.08, 0.1]),  # 0.16 capped
    "linear": (LINEAR, [0.03, 0.06, 0.09, 0.1]),  # 0.12 capped
    "fixed": (FIXED, [0.03, 0.03, 0.03, 0.03]),
}


def test_each_delay_of_each_kind_of_schedule() -> None:
    exponential = RetryPolicy(initial_delay=1.0, backoff=2.0, max_delay=10.0)
    assert [exponential.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    tripling = RetryPolicy(initial_delay=0.5, backoff=3.0, max_delay=20.0)
    assert [tripling.delay(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 13.5, 20.0]
    linear = RetryPolicy(initial_delay=1.5, max_delay=5.0, linear=True)
    assert [linear.delay(n) for n in range(1, 7)] == [1.5, 3.0, 4.5, 5.0, 5.0, 5.0]
    fixed = RetryPolicy(initial_delay=2.0, backoff=1.0, max_delay=60.0)
    assert [fixed.delay(n) for n in range(1, 5)] == [2.0, 2.0, 2.0, 2.0]
    # A cap below the first delay holds from the start.
    assert RetryPolicy(initial_delay=5.0, max_delay=3.0).delay(1) == 3.0
    assert RetryPolicy(initial_delay=5.0, max_delay=3.0, linear=True).delay(1) == 3.0
    # The defaults: 1 s doubling, capped at a minute.
    assert [RetryPolicy().delay(n) for n in (1, 2, 6, 7, 20)] == [1, 2, 32, 60, 60]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", sorted(SCHEDULES))
async def test_a_run_records_and_waits_out_each_delay(tmp_path: Path, kind: str) -> None:
    policy, delays = SCHEDULES[kind]
    app = App(f"sqlite:///{tmp_path / 'wf.db'}", poll_interval=0.05)
    starts: list[float] = []

    @app.step(retry=policy)
    async def always_fails() -> None:
        starts.append(time.time())
        raise ConnectionError(f"attempt {len(starts)}")

    @app.workflow()
    async def wf(ctx: Context) -> str:
        try:
            await always_fails()
        except Exception:
            return "gave up"
        return "unreachable"

    async with app:
        assert await app.run(wf, run_id="r") == "gave up"
        records = await app.events("r")
    failed = [(r.at, r.event) for r in records if isinstance(r.event, ev.StepFailed)]
    assert [e.attempt for _, e in failed] == [1, 2, 3, 4, 5]
    # next_attempt_at is the failure's time plus the delay (both read from the clock together).
    recorded = [e.next_attempt_at - at for at, e in failed[:-1] if e.next_attempt_at]
    assert recorded == pytest.approx(delays, abs=0.005)
    assert failed[-1][1].next_attempt_at is None and failed[-1][1].retryable is False
    # And each attempt waited for its recorded time (less a timer's few ms of earliness).
    assert len(starts) == 5
    for (_, event), later in zip(failed[:-1], starts[1:], strict=True):
        assert event.next_attempt_at is not None and later >= event.next_attempt_at - 0.005
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= delay - 0.005 for gap, delay in zip(gaps, delays, strict=True)), gaps
