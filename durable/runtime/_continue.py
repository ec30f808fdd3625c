"""ctx.continue_as_new(): closing a run's history and opening the next one, in one commit.

The run keeps its id and its seq numbering: the closing RunContinued and the new history's
RunStarted (carrying a Continuation), followed by the signals received and not yet consumed,
are one Append, so a crash leaves either the old history (whose replay reaches the same
continue_as_new() again) or the new one; never both open, never a lost signal. What is still
in the run's inbox (signals sent meanwhile, a child's end, a cancel) is untouched by the
continuation and is delivered to the new history. The worker then executes the new history
at once, under the same lease (durable._worker), and trims the events of older histories
(storage: Store.record_history).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from durable._children import cancel_requests
from durable._events import Continuation, RunContinued, RunStarted, SignalReceived
from durable._runlog import RunLog
from durable._state import RunState, fold
from durable._state_updates import closing_changes
from durable.runtime._context import ContinueAsNew


async def record_continuation(
    log: RunLog,
    state: RunState,
    request: ContinueAsNew,
    fingerprint: str,
    settled: Callable[[], Awaitable[None]],
) -> RunState:
    """Append the continuation (once every child being created is recorded, so that those
    the policy cancels are asked to) and return the new history's state once it is durable."""
    await settled()
    now = time.time()
    generation = state.generation + 1
    closing = RunContinued(generation=generation, input=request.input)
    opening: list[RunStarted | SignalReceived] = [
        RunStarted(
            workflow=state.workflow,
            version=state.version,
            input=request.input,
            parent_run_id=state.parent_run_id,
            fingerprint=fingerprint,
            parallelism=state.parallelism,
            deadline=state.deadline,
            kind=state.kind,
            continuation=Continuation(
                generation=generation,
                continued_from=log.last_seq + 1,  # the closing event's seq
                previous_start=state.history_start,
                previous_started_at=state.created_at if state.created_at is not None else now,
            ),
        )
    ]
    # Received, not consumed by a wait: the new history's code may still wait for them.
    opening += [
        SignalReceived(name=signal.name, payload=signal.payload)
        for _, signal in sorted(state.signals.items())
        if signal.consumed_by is None
    ]
    reason = f"parent run {state.run_id!r} continued as new"
    # Updates accepted by this history whose handler has not finished fail with it, in the same
    # commit (their callers get UpdateFailed, type durable.RunEnded): the new history starts
    # afresh and would never answer them. Updates not yet accepted stay in the inbox and go to
    # the new history.
    ended = closing_changes(state.updates, "continued as new", now)
    logged = log.append_continuation(
        closing, opening, cancel_requests(state, reason, now), now, updates=ended
    )
    durable = log.all_durable()
    if durable is not None:
        await durable
    return fold(state.run_id, logged)
