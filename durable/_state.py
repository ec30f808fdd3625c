"""Run state as a pure fold over the log.

The same fold serves live execution (the executor applies each event as it appends it), recovery
(fold the whole history read in one query), the CLI and the replay debugger. Nothing here does
I/O or looks at the clock: the same events always give the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from durable._children import children_to_cancel
from durable._errors import ErrorInfo
from durable._events import (
    AnyEvent,
    CancelRequested,
    ChildCompleted,
    ChildStarted,
    CodeChanged,
    CommandCancelled,
    Continuation,
    ExternalCompleted,
    ExternalStarted,
    InboxDropped,
    LoggedEvent,
    MarkerRecorded,
    RunCancelled,
    RunCompleted,
    RunContinued,
    RunFailed,
    RunResumed,
    RunStarted,
    SelectCompleted,
    SelectStarted,
    SignalReceived,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    StreamClosed,
    StreamWritten,
    TimerFired,
    TimerStarted,
    UpdateAccepted,
    UpdateCompleted,
    WaitCompleted,
    WaitStarted,
)
from durable._state_updates import UpdateState, apply_update
from durable._state_values import apply_talk

# The error type of a step the run's cancellation stopped: replay raises CancelledError for it.
CANCELLED = "durable.Cancelled"


@dataclass(slots=True)
class StepState:
    pos: int
    name: str
    # running: an attempt started with no outcome yet; retrying: failed, another attempt is
    # due at next_attempt_at; succeeded / failed: final.
    status: str = "running"
    attempts: int = 0  # the highest attempt number started
    failures: int = 0  # attempts that ended in StepFailed
    starts: int = 0  # StepStarted events: more than attempts means crash-interrupted attempts
    started_at: float | None = None
    finished_at: float | None = None
    input: msgspec.Raw | None = None
    result: msgspec.Raw | None = None
    error: ErrorInfo | None = None
    next_attempt_at: float | None = None
    # Failures before the run's last `durable retry`: the retry policy counts attempts after.
    retry_base: int = 0
    done_seq: int = 0  # the seq of its final outcome (0: none): replays keep that order


@dataclass(slots=True)
class WaitState:
    """A durable wait at one position: a timer (ctx.sleep), a signal wait, a child run or a
    select (ctx.wait / ctx.as_completed).

    `done` once it fired, got its signal, timed out, learned its child's end, returned (a
    select) or was cancelled; `signal_seq` is the seq of the signal it got (0: none, it timed
    out). A select's `count` awaitables raced until `return_when`; `selected`: the indices of
    those done when it returned, in the order they completed.
    """

    pos: int
    kind: str  # "timer", "signal", "child", "select", "external"
    due: float | None = None  # a timer's fire_at, a signal or external wait's deadline
    signal: str = ""  # an external wait's name too
    child_run_id: str = ""
    child_workflow: str = ""
    parent_close: str = "cancel"  # a child's: see durable._children
    done: bool = False
    cancelled: bool = False
    signal_seq: int = 0
    done_seq: int = 0  # the seq of the event that ended it (0: not ended)
    start_seq: int = 0  # a child run's: the seq of its ChildStarted
    at_call: bool = False  # a child run's: its ChildStarted.at_call
    count: int = 0
    return_when: str = ""
    selected: list[int] = field(default_factory=list)

    def describe(self) -> str:
        if self.kind == "timer":
            return "ctx.sleep()"
        if self.kind == "select":
            return f"ctx.wait() of {self.count} awaitables ({self.return_when})"
        if self.kind == "signal":
            return f"ctx.wait_for_signal({self.signal!r})"
        if self.kind == "external":
            return f"ctx.wait_external(name={self.signal!r})"
        return f"child run of {self.child_workflow!r}"


@dataclass(slots=True)
class SignalState:
    seq: int
    name: str
    payload: msgspec.Raw
    consumed_by: int | None = None  # the position of the wait that got it


@dataclass(slots=True)
class RunState:
    run_id: str
    workflow: str = ""
    version: str = ""
    input: msgspec.Raw | None = None
    parent_run_id: str | None = None
    fingerprint: str = ""
    parallelism: int | None = None
    status: str = "pending"
    steps: dict[int, StepState] = field(default_factory=dict)
    markers: dict[int, MarkerRecorded] = field(default_factory=dict)
    result: msgspec.Raw | None = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False
    cancel_reason: str = ""
    # The cancellation reached workflow code (a step or wait was ended by it): a resumed run
    # must not deliver it again.
    cancel_delivered: bool = False
    deadline: float | None = None
    waits: dict[int, WaitState] = field(default_factory=dict)
    signals: dict[int, SignalState] = field(default_factory=dict)  # by the seq they arrived at
    children: dict[str, ChildCompleted] = field(default_factory=dict)  # ended, by run id
    inbox_ids: set[int] = field(default_factory=set)  # inbox items already taken into the log
    fingerprints: list[tuple[int, str]] = field(default_factory=list)  # (seq, CodeChanged)
    created_at: float | None = None
    finished_at: float | None = None
    last_seq: int = 0
    forked_from: str | None = None
    fork_point: str = ""
    kind: str = ""  # "dag", or "" for Python (and old DAG logs)
    resumed: list[int] = field(default_factory=list)  # seqs of RunResumed (durable retry)
    # Children asked to cancel with the run's CancelRequested (see durable._children).
    children_asked: set[str] = field(default_factory=set)
    # Positions a retry forgot (a DAG's re-decided instances): never handed out again.
    forgotten: set[int] = field(default_factory=set)
    # ctx.continue_as_new(): the history this state folds (0: the run's first), the seq of its
    # RunStarted, what it continues (None for the first), and, once it is closed by a
    # RunContinued, the generation that follows it (this state object then takes no events).
    generation: int = 0
    history_start: int = 1
    continuation: Continuation | None = None
    continued_as: int = 0
    # External waits (ctx.wait_external) by position: opened, and those ended.
    externals: dict[int, ExternalStarted] = field(default_factory=dict)
    external_ends: dict[int, ExternalCompleted] = field(default_factory=dict)
    commands: dict[int, str] = field(default_factory=dict)  # pos -> "ctx.set_event('k')" etc.
    streams_closed: set[str] = field(default_factory=set)  # keys workflow code closed
    # Indexes the fold keeps so that matching costs O(1), not a scan of the whole run (a run
    # looping on signals or children would be quadratic): the seqs of the received signals no
    # wait got yet, by name, oldest first; the positions of the child waits, by child run id.
    unconsumed: dict[str, dict[int, None]] = field(default_factory=dict)
    child_waits: dict[str, list[int]] = field(default_factory=dict)
    updates: dict[str, UpdateState] = field(default_factory=dict)  # accepted, by update id
    # The seq of the first event of each position (its command's record): a replay resumes
    # tasks waiting for an outcome only once the commands recorded before it were taken.
    first_seq: dict[int, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "partial", "failed", "cancelled")


def apply(state: RunState, seq: int, at: float, event: AnyEvent) -> None:
    """Fold one event into the state (in place: the executor's hot path keeps one state).

    One dict lookup by the event's exact type picks its handler (events are final msgspec
    Structs: no subclasses), not a chain of isinstance tests that late types paid in full."""
    state.last_seq = seq
    pos = getattr(event, "pos", None)
    if pos is not None and pos not in state.first_seq:
        state.first_seq[pos] = seq
    handler = _HANDLERS.get(type(event))
    if handler is not None:
        handler(state, seq, at, event)
    else:
        apply_talk(state, seq, event)


def _apply_external(state: RunState, seq: int, event: ExternalStarted | ExternalCompleted) -> None:
    if isinstance(event, ExternalStarted):
        state.externals[event.pos] = event
        state.waits[event.pos] = WaitState(
            event.pos, "external", due=event.deadline, signal=event.name
        )
        return
    state.external_ends[event.pos] = event
    if event.inbox_id:
        state.inbox_ids.add(event.inbox_id)
    wait = state.waits[event.pos]
    wait.done, wait.done_seq = True, seq


def _step(state: RunState, pos: int, name: str) -> StepState:
    step = state.steps.get(pos)
    if step is None:  # an outcome without its start (an old or repaired log)
        step = state.steps[pos] = StepState(pos=pos, name=name)
    return step


def _step_started(state: RunState, seq: int, at: float, event: StepStarted) -> None:
    step = state.steps.get(event.pos)
    if step is None:
        step = StepState(pos=event.pos, name=event.name, input=event.input)
        state.steps[event.pos] = step
    step.status = "running"
    step.done_seq = 0
    if event.attempt > step.attempts:
        step.attempts = event.attempt
    step.starts += 1
    if step.started_at is None:
        step.started_at = at
    step.next_attempt_at = None
    if state.status == "pending":
        state.status = "running"


def _step_completed(state: RunState, seq: int, at: float, event: StepCompleted) -> None:
    step = _step(state, event.pos, "?")
    step.status = "succeeded"
    step.result = event.result
    step.error = None
    step.finished_at = at
    step.done_seq = seq


def _step_failed(state: RunState, seq: int, at: float, event: StepFailed) -> None:
    step = _step(state, event.pos, "?")
    step.failures += 1
    step.attempts = max(step.attempts, event.attempt)
    step.error = event.error
    if event.retryable:
        step.status = "retrying"
        step.next_attempt_at = event.next_attempt_at
    else:
        step.status = "failed"
        step.finished_at = at
        step.done_seq = seq
        if event.error.type == CANCELLED:
            state.cancel_delivered = True


def _step_skipped(state: RunState, seq: int, at: float, event: StepSkipped) -> None:
    step = _step(state, event.pos, event.name)
    step.status = "skipped"
    step.result = None
    step.error = ErrorInfo(type="skipped", message=event.reason)
    step.finished_at = at
    step.done_seq = seq


def _marker(state: RunState, seq: int, at: float, event: MarkerRecorded) -> None:
    state.markers[event.pos] = event


def _run_started(state: RunState, seq: int, at: float, event: RunStarted) -> None:
    state.workflow = event.workflow
    state.version = event.version
    state.input = event.input
    state.parent_run_id = event.parent_run_id
    state.fingerprint = event.fingerprint
    state.parallelism = event.parallelism
    state.deadline = event.deadline
    state.created_at = at
    state.forked_from = event.forked_from
    state.fork_point = event.fork_point
    state.kind = event.kind
    state.history_start = seq
    if event.continuation is not None:
        state.continuation = event.continuation
        state.generation = event.continuation.generation


def _run_completed(state: RunState, seq: int, at: float, event: RunCompleted) -> None:
    state.status = event.status
    state.result = event.result
    state.error = event.error
    state.finished_at = at


def _run_failed(state: RunState, seq: int, at: float, event: RunFailed) -> None:
    state.status = "failed"
    state.error = event.error
    state.finished_at = at


def _cancel_requested(state: RunState, seq: int, at: float, event: CancelRequested) -> None:
    # Its commit asked these children to cancel: the run's end need not ask again.
    state.children_asked.update(children_to_cancel(state))
    state.cancel_requested = True
    state.cancel_reason = event.reason
    if event.inbox_id:
        state.inbox_ids.add(event.inbox_id)


def _timer_fired(state: RunState, seq: int, at: float, event: TimerFired) -> None:
    wait = state.waits[event.pos]
    wait.done, wait.done_seq = True, seq


def _signal_received(state: RunState, seq: int, at: float, event: SignalReceived) -> None:
    state.signals[seq] = SignalState(seq, event.name, event.payload)
    unconsumed = state.unconsumed.get(event.name)
    if unconsumed is None:
        unconsumed = state.unconsumed[event.name] = {}
    unconsumed[seq] = None  # seqs only grow: the dict keeps them oldest first
    if event.inbox_id:
        state.inbox_ids.add(event.inbox_id)


def _child_completed(state: RunState, seq: int, at: float, event: ChildCompleted) -> None:
    state.children[event.run_id] = event
    if event.inbox_id:
        state.inbox_ids.add(event.inbox_id)
    for pos in state.child_waits.get(event.run_id, ()):
        wait = state.waits[pos]
        if wait.kind == "child" and wait.child_run_id == event.run_id and not wait.done:
            wait.done, wait.done_seq = True, seq


def _command_cancelled(state: RunState, seq: int, at: float, event: CommandCancelled) -> None:
    wait = state.waits[event.pos]
    wait.done = wait.cancelled = True
    wait.done_seq = seq
    state.cancel_delivered = True


def _code_changed(state: RunState, seq: int, at: float, event: CodeChanged) -> None:
    state.fingerprints.append((seq, event.fingerprint))


def _run_cancelled(state: RunState, seq: int, at: float, event: RunCancelled) -> None:
    state.status = "cancelled"
    state.finished_at = at


def _select_started(state: RunState, seq: int, at: float, event: SelectStarted) -> None:
    state.waits[event.pos] = WaitState(
        event.pos,
        "select",
        due=event.deadline,
        count=event.count,
        return_when=event.return_when,
    )


def _select_completed(state: RunState, seq: int, at: float, event: SelectCompleted) -> None:
    wait = state.waits[event.pos]
    wait.done, wait.done_seq = True, seq
    wait.selected = list(event.done)


def _inbox_dropped(state: RunState, seq: int, at: float, event: InboxDropped) -> None:
    state.inbox_ids.update(event.inbox_ids)


def _apply_resume(state: RunState, seq: int, at: float, event: RunResumed) -> None:
    if state.status == "cancelled":  # resumed: its cancellation is over, never delivered again
        state.cancel_requested = False
        state.cancel_reason = ""
    state.children_asked.clear()  # children resumed with the run are asked again at its end
    state.status = "running"
    state.result = state.error = state.finished_at = None
    state.deadline = event.deadline
    state.cancel_delivered = False  # a deadline's cancellation of in-flight steps is over
    state.resumed.append(seq)
    for pos in event.retry:
        step = state.steps.get(pos)
        if step is not None:
            step.status = "retrying"
            step.next_attempt_at = step.finished_at = None
            step.done_seq = 0
            step.retry_base = step.failures
    for pos in event.forget:
        state.steps.pop(pos, None)
        state.markers.pop(pos, None)  # a builder workflow's records (durable._repair)
        state.forgotten.add(pos)
    for run_id in event.children:
        state.children.pop(run_id, None)
        for pos in state.child_waits.get(run_id, ()):
            wait = state.waits[pos]
            if wait.kind == "child" and wait.child_run_id == run_id:
                wait.done, wait.done_seq = False, 0
    for pos in event.reopen:
        wait = state.waits[pos]
        wait.cancelled = False
        wait.done = wait.kind == "child" and wait.child_run_id in state.children
        wait.done_seq = seq if wait.done else 0


def _timer_started(state: RunState, seq: int, at: float, event: TimerStarted) -> None:
    state.waits[event.pos] = WaitState(event.pos, "timer", due=event.fire_at)


def _wait_started(state: RunState, seq: int, at: float, event: WaitStarted) -> None:
    state.waits[event.pos] = WaitState(event.pos, "signal", due=event.deadline, signal=event.signal)


def _child_started(state: RunState, seq: int, at: float, event: ChildStarted) -> None:
    wait = WaitState(event.pos, "child", child_run_id=event.run_id)
    wait.child_workflow = event.workflow
    wait.start_seq = seq
    wait.parent_close = event.parent_close
    wait.at_call = event.at_call
    if event.cancel_asked:
        state.children_asked.add(event.run_id)
    if event.run_id in state.children:  # it may have ended before we recorded it
        wait.done, wait.done_seq = True, seq
    state.waits[event.pos] = wait
    positions = state.child_waits.setdefault(event.run_id, [])
    if event.pos not in positions:
        positions.append(event.pos)


def _wait_completed(state: RunState, seq: int, at: float, event: WaitCompleted) -> None:
    wait = state.waits[event.pos]
    wait.done, wait.done_seq = True, seq
    wait.signal_seq = event.signal_seq
    if event.signal_seq:
        signal = state.signals[event.signal_seq]
        signal.consumed_by = event.pos
        unconsumed = state.unconsumed.get(signal.name)
        if unconsumed is not None:
            unconsumed.pop(event.signal_seq, None)
            if not unconsumed:
                del state.unconsumed[signal.name]


# The handler of each event type (the exact type: apply() looks up type(event)).
_HANDLERS: dict[type[Any], Callable[[RunState, int, float, Any], None]] = {
    StepStarted: _step_started,
    StepCompleted: _step_completed,
    StepFailed: _step_failed,
    StepSkipped: _step_skipped,
    MarkerRecorded: _marker,
    RunStarted: _run_started,
    RunCompleted: _run_completed,
    RunFailed: _run_failed,
    CancelRequested: _cancel_requested,
    TimerStarted: _timer_started,
    WaitStarted: _wait_started,
    ChildStarted: _child_started,
    WaitCompleted: _wait_completed,
    TimerFired: _timer_fired,
    SignalReceived: _signal_received,
    ChildCompleted: _child_completed,
    CommandCancelled: _command_cancelled,
    CodeChanged: _code_changed,
    RunCancelled: _run_cancelled,
    RunResumed: _apply_resume,
    SelectStarted: _select_started,
    SelectCompleted: _select_completed,
    InboxDropped: _inbox_dropped,
}


def fold(run_id: str, events: Iterable[LoggedEvent]) -> RunState:
    """The state of the run's current history: a RunStarted that continues the run
    (ctx.continue_as_new()) starts the fold afresh, so folding every retained event and
    folding only the current history give the same state."""
    state = RunState(run_id=run_id)
    for logged in events:
        event = logged.event
        if starts_history(event):
            state = RunState(run_id=run_id)
        apply(state, logged.seq, logged.at, event)
    return state


def starts_history(event: AnyEvent) -> bool:
    """A RunStarted that continues the run (ctx.continue_as_new()): a fold starts afresh."""
    return type(event) is RunStarted and event.continuation is not None


def apply_streams(state: RunState, event: StreamWritten | StreamClosed) -> None:
    """A workflow-level stream command: its position, and the keys it closed (what a later
    ctx.write_stream to them is refused by)."""
    if isinstance(event, StreamClosed):
        state.commands[event.pos] = f"ctx.close_stream({event.key!r})"
        state.streams_closed.add(event.key)
    else:
        state.commands[event.pos] = f"ctx.write_stream({event.key!r})"


def _run_continued(state: RunState, seq: int, at: float, event: RunContinued) -> None:
    state.continued_as = event.generation


_HANDLERS.update(
    {
        RunContinued: _run_continued,
        ExternalStarted: lambda state, seq, at, event: _apply_external(state, seq, event),
        ExternalCompleted: lambda state, seq, at, event: _apply_external(state, seq, event),
        StreamWritten: lambda state, seq, at, event: apply_streams(state, event),
        StreamClosed: lambda state, seq, at, event: apply_streams(state, event),
    }
)
_HANDLERS[UpdateAccepted] = _HANDLERS[UpdateCompleted] = lambda state, seq, at, event: apply_update(
    state.updates, state.commands, state.inbox_ids, seq, event
)
