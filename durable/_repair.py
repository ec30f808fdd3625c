"""Planning `durable fork` and `durable retry` from a run's log: pure functions, no I/O.

A fork is a new run whose log starts with a copy of the source run's recorded commands before a
position: the copied outcomes are replayed, everything from the position on executes again. A
retry continues a failed run in place: one RunResumed event says which recorded failures get a
new attempt. Both are decided here from the events alone, so the CLI, the SDK and the HTTP API
plan them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from durable._errors import RepairError
from durable._events import (
    AnyEvent,
    CancelRequested,
    ChildCompleted,
    ChildStarted,
    CodeChanged,
    CommandCancelled,
    LoggedEvent,
    MarkerRecorded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    SelectStarted,
    SignalReceived,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    StreamClosed,
    StreamWritten,
    TimerStarted,
    WaitCompleted,
    WaitStarted,
)
from durable._state import CANCELLED, RunState
from durable.dag._report import DELIVERY_PREFIX, parse_name

# Events that take a new position the first time they name it: the workflow moving on.
# The markers durable.flow's interpreter records (a step's result, the workflow's end, a
# lambda's decision): its bookkeeping, see retry_plan.
FLOW_MARKERS = "flow."

_POSITIONED = (
    StepStarted,
    MarkerRecorded,
    TimerStarted,
    WaitStarted,
    ChildStarted,
    StepSkipped,
    SelectStarted,
    StreamWritten,
    StreamClosed,
)
# Not copied by a fork: the fork has its own start and end, and no cancellation or retry.
_NOT_COPIED = (
    RunStarted,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunResumed,
    CancelRequested,
    CodeChanged,
    CommandCancelled,
)


# -- fork ---------------------------------------------------------------------------------


def fork_position(state: RunState, from_step: str) -> int:
    """`--from-step` as a position: a number is a position (as `durable runs show` lists
    them); a name is the first position of that step (a DAG step id, or a Python step name)."""
    used = sorted({*state.steps, *state.markers, *state.waits})
    last = used[-1] if used else -1
    text = from_step.strip()
    if text.isdigit():
        pos = int(text)
        if pos > last + 1:
            raise RepairError(
                f"run {state.run_id!r} has recorded positions 0..{last}: --from-step {pos} is "
                f"past them (use at most {last + 1} to re-execute only what comes after)"
            )
        return pos
    for pos, step in sorted(state.steps.items()):
        parsed = parse_name(step.name)
        if step.name == text or (parsed is not None and parsed[0] == text):
            return pos
    names = sorted({s.name for s in state.steps.values() if parse_name(s.name) is not None})
    shown = ", ".join(repr(n) for n in names[:12]) or "none"
    raise RepairError(
        f"run {state.run_id!r} has no step {text!r}; its steps are {shown} "
        "(or give a position number)"
    )


def fork_prefix(
    state: RunState, events: Sequence[LoggedEvent], pos: int, loop_members: dict[str, str]
) -> list[AnyEvent]:
    """The events a fork from position `pos` starts with (after its own RunStarted): every
    command before `pos` that reached its outcome, with its events in their recorded order,
    and every signal the source received (the world's input: a wait after `pos` receives
    them again). Unfinished commands before `pos` are left out and execute again.

    `loop_members`: a DAG's loop body steps -> their loop step. A loop iteration is copied
    whole or not at all (its body's instances and the iteration's own instance)."""
    for p, step in state.steps.items():
        if p < pos and step.error is not None and step.error.type == CANCELLED:
            raise _cancelled_before(state, p, pos)
    for p, wait in state.waits.items():
        if p < pos and wait.cancelled:
            raise _cancelled_before(state, p, pos)
    keep: set[int] = {p for p, s in state.steps.items() if p < pos and _final(s.status)}
    keep = {p for p in keep if not state.steps[p].name.startswith(DELIVERY_PREFIX)}
    keep -= _partial_iterations(state, pos, loop_members)
    keep.update(p for p in state.markers if p < pos)
    keep.update(p for p, w in state.waits.items() if p < pos and w.done)
    children = {w.child_run_id for p, w in state.waits.items() if p in keep and w.kind == "child"}
    prefix: list[AnyEvent] = []
    seqs: dict[int, int] = {}  # the source's seq of a signal -> its seq in the fork
    for logged in events:
        event = logged.event
        if isinstance(event, SignalReceived):
            seqs[logged.seq] = len(prefix) + 2  # the fork's RunStarted is seq 1
            prefix.append(msgspec.structs.replace(event, inbox_id=0))
        elif isinstance(event, ChildCompleted):
            if event.run_id in children:
                prefix.append(msgspec.structs.replace(event, inbox_id=0))
        elif isinstance(event, WaitCompleted):
            if event.pos in keep:
                signal_seq = seqs[event.signal_seq] if event.signal_seq else 0
                prefix.append(msgspec.structs.replace(event, signal_seq=signal_seq))
        elif isinstance(event, _NOT_COPIED):
            continue
        elif getattr(event, "pos", None) in keep:
            prefix.append(event)
    return prefix


def _final(status: str) -> bool:
    return status in ("succeeded", "failed", "skipped")


def _partial_iterations(state: RunState, pos: int, members: dict[str, str]) -> set[int]:
    """Positions of DAG loop iterations that do not lie wholly before `pos` (or did not
    finish): such an iteration runs again from its start."""
    by_iteration: dict[tuple[str, int], list[int]] = {}
    for p, step in state.steps.items():
        parsed = parse_name(step.name)
        if parsed is None or parsed[2] is None:
            continue
        loop_id = members.get(parsed[0], parsed[0])
        by_iteration.setdefault((loop_id, parsed[2]), []).append(p)
    drop: set[int] = set()
    for (loop_id, n), positions in by_iteration.items():
        own = [p for p in positions if state.steps[p].name == f"{loop_id}#{n}"]
        whole = all(p < pos and _final(state.steps[p].status) for p in positions)
        if not whole or not own:
            drop.update(positions)
    # An iteration after one that runs again runs again too.
    first_dropped: dict[str, int] = {}
    for (loop_id, n), positions in by_iteration.items():
        if drop.issuperset(positions):
            first_dropped[loop_id] = min(n, first_dropped.get(loop_id, n))
    for (loop_id, n), positions in by_iteration.items():
        if loop_id in first_dropped and n > first_dropped[loop_id]:
            drop.update(positions)
    return drop


def _cancelled_before(state: RunState, p: int, pos: int) -> RepairError:
    return RepairError(
        f"run {state.run_id!r} was cancelled at position {p}, before --from-step {pos}: "
        f"a fork cannot reuse a cancelled command; fork from {p} or earlier"
    )


# -- retry --------------------------------------------------------------------------------


def retry_plan(state: RunState, events: Sequence[LoggedEvent]) -> RunResumed:
    """What `durable retry` resumes. A Python run: the failed steps and child runs the run
    ended on, i.e. final failures recorded after the workflow last took a new position (a
    failure the code caught and went on from is part of its history, not retried); if the
    code itself raised, nothing is retried and the (fixed) code runs on from its log. A DAG
    run: every failed instance gets a new attempt (a queued step's failed child run is resumed
    too), and skipped instances and notification deliveries are decided again."""
    if state.kind == "dag":
        retry = [
            p
            for p, s in sorted(state.steps.items())
            if s.status == "failed" and not s.name.startswith(DELIVERY_PREFIX)
        ]
        forget = [
            p
            for p, s in sorted(state.steps.items())
            if s.status == "skipped" or s.name.startswith(DELIVERY_PREFIX)
        ]
        # A queued step's instance failed with its child run (durable.dag._queued): the
        # child is resumed with the run, and the instance's new attempt waits for it again.
        ended = {
            w.child_run_id
            for p in retry
            if (w := state.waits.get(p)) is not None
            and w.kind == "child"
            and (end := state.children.get(w.child_run_id)) is not None
            and end.status in ("failed", "cancelled")
        }
        return RunResumed(retry=retry, forget=forget, children=sorted(ended))
    seen: set[int] = set()
    moved_on = 0  # the seq at which the workflow last took a new position
    failed_at: dict[int, int] = {}
    child_end: dict[str, int] = {}
    cancelled_at: dict[int, int] = {}  # waits the cancellation (or the deadline) ended
    cancels: list[int] = []  # seqs of the commands the cancellation ended, since the last retry
    bookkeeping: dict[int, int] = {}  # a builder workflow's own records: position -> seq
    for logged in events:
        event = logged.event
        if isinstance(event, MarkerRecorded) and event.kind.startswith(FLOW_MARKERS):
            # What durable.flow's interpreter records of a step's end and the workflow's:
            # not the code going on from a failure, so they don't hide it from the retry.
            if event.pos not in seen:
                seen.add(event.pos)
                bookkeeping[event.pos] = logged.seq
        elif isinstance(event, _POSITIONED) and event.pos not in seen:
            seen.add(event.pos)
            moved_on = logged.seq
        if isinstance(event, StepFailed) and not event.retryable:
            failed_at[event.pos] = logged.seq
            if event.error.type == CANCELLED:
                cancels.append(logged.seq)
        elif isinstance(event, StepCompleted | StepStarted):
            failed_at.pop(event.pos, None)
        elif isinstance(event, ChildCompleted):
            child_end[event.run_id] = logged.seq
        elif isinstance(event, CommandCancelled):
            cancelled_at[event.pos] = logged.seq
            cancels.append(logged.seq)
        elif isinstance(event, RunResumed):
            cancelled_at = {p: seq for p, seq in cancelled_at.items() if p not in event.reopen}
            cancels = []
    if state.status == "cancelled":
        _check_cancel_not_handled(state, moved_on, cancels)
    retry = sorted(p for p, seq in failed_at.items() if seq > moved_on)
    reopen = sorted(p for p, seq in cancelled_at.items() if seq > moved_on)
    children = {
        run_id
        for run_id, seq in child_end.items()
        if seq > moved_on and state.children[run_id].status in ("failed", "cancelled")
    }
    for pos in reopen:  # a child the cancellation reached (its recorded end, if any, too)
        wait = state.waits[pos]
        end = state.children.get(wait.child_run_id)
        if wait.kind == "child" and (end is None or end.status in ("failed", "cancelled")):
            children.add(wait.child_run_id)
    # A builder workflow's records of what a retried step led to are decided again.
    first = min((failed_at[p] for p in retry), default=None)
    forget = [] if first is None else sorted(p for p, q in bookkeeping.items() if q > first)
    return RunResumed(retry=retry, forget=forget, children=sorted(children), reopen=reopen)


def _check_cancel_not_handled(state: RunState, moved_on: int, cancels: list[int]) -> None:
    """A cancelled run resumes where its cancellation reached it; one whose code went on
    after that (compensation steps in an `except CancelledError`) cannot: resumed, the code
    would take the other path and not find its recorded commands. `cancels`: the seqs of
    the commands the cancellation ended."""
    if any(seq < moved_on for seq in cancels):
        raise RepairError(
            f"run {state.run_id!r} handled its cancellation (its code went on after a step or "
            "wait was cancelled): it cannot be resumed in place; fork it from before the "
            "cancelled step instead (`durable fork`)"
        )


def retry_summary(plan: RunResumed, state: RunState) -> str:
    """What a retry will do, in words (the CLI prints it)."""
    parts: list[str] = []
    if plan.retry:
        steps = ", ".join(f"{state.steps[p].name} (#{p})" for p in plan.retry)
        parts.append(f"retrying {steps}")
    if plan.children:
        parts.append(
            f"retrying child run{'s' if len(plan.children) > 1 else ''} " + ", ".join(plan.children)
        )
    if plan.reopen:
        waits = ", ".join(f"{state.waits[p].describe()} (#{p})" for p in plan.reopen)
        parts.append(f"waiting again at {waits}")
    if plan.forget:
        parts.append(f"deciding {len(plan.forget)} skipped or notification instance(s) again")
    if not parts:
        return "no failed step to retry: the workflow code runs on from its log"
    return "; ".join(parts)
