"""Replaying a run's code against its recorded log, with no side effects.

The executor runs exactly as it does live, but with no log to write to: every step call and
ctx value must be answered from the history. Replay ends when the code returns, raises, or asks
for something the history does not hold yet (an unfinished run). Divergence is whatever the live
engine would call non-deterministic, plus a final result that differs from the recorded one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from durable._codec import encode_value, error_info
from durable._errors import SerializationError, UnknownWorkflowError
from durable._events import TERMINAL_EVENTS, LoggedEvent
from durable._state import RunState, fold
from durable.dag._model import DagDefinition
from durable.dag._replay import check_dag_log
from durable.runtime._executor import RunExecutor
from durable.runtime._registry import Registry


class Divergence(msgspec.Struct, frozen=True):
    position: int | None
    recorded: str
    requested: str
    where: str
    message: str
    # The first event of the log that records what diverged (the position's first event, the
    # run's final event for a divergence at the end): where a step-by-step walk stops.
    seq: int | None = None


class ReplayReport(msgspec.Struct, frozen=True):
    run_id: str
    workflow: str
    version: str
    status: str
    deterministic: bool
    events: int
    positions_replayed: int
    reached_end_of_history: bool
    divergence: Divergence | None = None


def state_at(run_id: str, events: Sequence[LoggedEvent], until_seq: int | None) -> RunState:
    """The state folded from the events up to and including seq `until_seq`."""
    return fold(run_id, [e for e in events if until_seq is None or e.seq <= until_seq])


async def replay(run_id: str, events: Sequence[LoggedEvent], registry: Registry) -> ReplayReport:
    state = fold(run_id, events)
    workflow = registry.get(state.workflow, state.version)
    if workflow is None:
        raise UnknownWorkflowError(state.workflow, state.version, registry.names())
    if workflow.dag is not None:
        # No code to re-execute: the log's decisions are checked against the definition.
        divergence = _dag_divergence(run_id, events, workflow.dag.definition)
        positions, reached_end = len(state.steps), not state.finished
    else:
        executor = RunExecutor(state, workflow, None, registry=registry)
        await executor.start()
        divergence = _with_seq(_divergence(executor, state), events)
        positions, reached_end = executor.positions_used, executor.reached_end_of_history
    return ReplayReport(
        run_id=run_id,
        workflow=state.workflow,
        version=state.version,
        status=state.status,
        deterministic=divergence is None,
        events=len(events),
        positions_replayed=positions,
        reached_end_of_history=reached_end,
        divergence=divergence,
    )


def _dag_divergence(
    run_id: str, events: Sequence[LoggedEvent], definition: DagDefinition
) -> Divergence | None:
    seq, why = check_dag_log(definition, run_id, events)
    if why is None:
        return None
    where = definition.source.file or definition.name
    return Divergence(seq, f"event #{seq}", "the definition's schedule", where, why, seq=seq)


def _with_seq(div: Divergence | None, events: Sequence[LoggedEvent]) -> Divergence | None:
    if div is None:
        return None
    if div.position is None:
        ends = [e.seq for e in events if isinstance(e.event, TERMINAL_EVENTS)]
        seq = ends[-1] if ends else None  # a retried run ended more than once
    else:
        seq = next((e.seq for e in events if getattr(e.event, "pos", None) == div.position), None)
    return msgspec.structs.replace(div, seq=seq)


def _divergence(executor: RunExecutor, state: RunState) -> Divergence | None:
    fatal = executor.fatal
    if fatal is not None:
        return Divergence(fatal.position, fatal.recorded, fatal.requested, fatal.where, str(fatal))
    if executor.returned is None:  # stopped at the end of the history: consistent so far
        return None
    ok, value = executor.returned
    where = executor.workflow.source
    if ok:
        if state.status == "failed":
            assert state.error is not None
            return _at_end(where, f"the run failing with {state.error}", "a normal return")
        if state.status == "succeeded" and state.result is not None:
            try:
                now = encode_value(value, "the replayed result")
            except SerializationError as exc:
                return _at_end(where, "a result", f"an unserializable result ({exc})")
            if now != bytes(state.result):
                return _at_end(where, "a different result", "the result it returns now")
        return None
    assert isinstance(value, BaseException)
    if isinstance(value, asyncio.CancelledError):  # the recorded cancellation ended it
        if state.status in ("succeeded", "failed"):
            return _at_end(where, f"the run ending {state.status}", "ending cancelled")
        return None
    err = error_info(value)
    if state.status == "succeeded":
        return _at_end(where, "a successful return", f"raising {err}")
    if state.status == "failed" and state.error is not None and state.error.type != err.type:
        return _at_end(where, f"failing with {state.error}", f"failing with {err}")
    return None


def _at_end(where: str, recorded: str, requested: str) -> Divergence:
    return Divergence(
        position=None,
        recorded=recorded,
        requested=requested,
        where=where,
        message=(
            f"at the end of the run the log recorded {recorded}, the code now gives {requested}"
        ),
    )


def run_replay(run_id: str, events: Sequence[LoggedEvent], registry: Registry) -> ReplayReport:
    """Synchronous entry point for tools that are not async themselves."""
    return asyncio.run(replay(run_id, events, registry))
