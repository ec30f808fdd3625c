"""The replay order's table of recorded outcomes (durable.runtime._order): every outcome in the
order of its seq, ties (one event ending several waits, or a child's start and end recorded by
one ChildStarted) by key, a start before an end; and a sequential replay takes every outcome
at once, without pausing, whatever its length."""

from __future__ import annotations

from pathlib import Path

import msgspec

from durable._events import (
    ChildCompleted,
    ChildStarted,
    RunStarted,
    StepCompleted,
    StepStarted,
)
from durable._state import RunState, apply, fold
from durable.runtime._executor import RunExecutor
from durable.runtime._order import ReplayOrder, done_key, start_key
from sdk import App, Context

NIL = msgspec.Raw(b"\xc0")


def folded(events: list[object]) -> RunState:
    state = RunState(run_id="r")
    for seq, event in enumerate(events, start=1):
        apply(state, seq, float(seq), event)  # type: ignore[arg-type]
    return state


def test_outcomes_are_ordered_by_seq_and_ties_by_key() -> None:
    started = RunStarted(workflow="w", version="1", input=NIL, fingerprint="f")
    events: list[object] = [
        started,
        StepStarted(pos=0, name="a", attempt=1, input=NIL),  # seq 2
        ChildCompleted(run_id="c1", status="succeeded"),  # seq 3: c1 ended before its record
        ChildStarted(pos=1, run_id="c1", workflow="cw", version="1"),  # seq 4: start and end
        ChildStarted(pos=2, run_id="c2", workflow="cw", version="1"),  # seq 5
        StepCompleted(pos=0, result=NIL),  # seq 6
        ChildCompleted(run_id="c2", status="succeeded"),  # seq 7
    ]
    order = ReplayOrder(folded(events), busy=lambda: False)
    keys = [start_key(1), done_key(1), start_key(2), done_key(0), done_key(2)]
    assert order._order == keys
    assert order._seqs == [4, 4, 5, 6, 7]
    assert not order.is_next(done_key(1))  # the start recorded with it comes first
    assert order.ready(start_key(1)) and order.ready(done_key(1))
    assert not order.ready(done_key(0))  # c2's start was recorded before step 0's end


async def test_a_sequential_replay_never_pauses(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'order.db'}", poll_interval=0.05)

    @app.step
    async def work(n: int) -> int:
        return n + 1

    @app.workflow
    async def sequential(ctx: Context, n: int) -> int:
        total = 0
        for i in range(n):
            total += await work(i)
        return total

    async with app:
        handle = await app.start(sequential, 300)
        assert await handle.result(timeout=60) == sum(range(1, 301))
        events = await app.events(handle.run_id)
    state = fold(handle.run_id, events)
    executor = RunExecutor(state, app.registry.workflow(sequential), None, registry=app.registry)
    await executor.start()
    assert executor.returned == (True, sum(range(1, 301)))
    assert executor.positions_used == 300
    # Every recorded outcome was taken at once (ReplayOrder.take_now), none through a pause.
    assert executor.order.pauses == 0 and not executor.order.active
    assert executor.order._needs is None  # nobody waited for a later outcome
