"""Run state as a pure fold over the log.

The same fold serves live execution (the executor applies each event as it appends it), recovery
(fold the whole history read in one query), the CLI and the replay debugger. Nothing here does
I/O or looks at the clock: the same events always give the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from durable._errors import ErrorInfo
from durable._events import (
    AnyEvent,
    CancelRequested,
    LoggedEvent,
    MarkerRecorded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
)


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
    created_at: float | None = None
    finished_at: float | None = None
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "partial", "failed", "cancelled")


def apply(state: RunState, seq: int, at: float, event: AnyEvent) -> None:
    """Fold one event into the state (in place: the executor's hot path keeps one state)."""
    state.last_seq = seq
    if isinstance(event, StepStarted):
        step = state.steps.get(event.pos)
        if step is None:
            step = StepState(pos=event.pos, name=event.name, input=event.input)
            state.steps[event.pos] = step
        step.status = "running"
        step.attempts = max(step.attempts, event.attempt)
        step.starts += 1
        if step.started_at is None:
            step.started_at = at
        step.next_attempt_at = None
        if state.status == "pending":
            state.status = "running"
    elif isinstance(event, StepCompleted):
        step = state.steps.setdefault(event.pos, StepState(pos=event.pos, name="?"))
        step.status = "succeeded"
        step.result = event.result
        step.error = None
        step.finished_at = at
    elif isinstance(event, StepFailed):
        step = state.steps.setdefault(event.pos, StepState(pos=event.pos, name="?"))
        step.failures += 1
        step.attempts = max(step.attempts, event.attempt)
        step.error = event.error
        if event.retryable:
            step.status = "retrying"
            step.next_attempt_at = event.next_attempt_at
        else:
            step.status = "failed"
            step.finished_at = at
    elif isinstance(event, StepSkipped):
        step = state.steps.setdefault(event.pos, StepState(pos=event.pos, name=event.name))
        step.status = "skipped"
        step.result = None
        step.error = ErrorInfo(type="skipped", message=event.reason)
        step.finished_at = at
    elif isinstance(event, MarkerRecorded):
        state.markers[event.pos] = event
    elif isinstance(event, RunStarted):
        state.workflow = event.workflow
        state.version = event.version
        state.input = event.input
        state.parent_run_id = event.parent_run_id
        state.fingerprint = event.fingerprint
        state.parallelism = event.parallelism
        state.created_at = at
    elif isinstance(event, RunCompleted):
        state.status = event.status
        state.result = event.result
        state.error = event.error
        state.finished_at = at
    elif isinstance(event, RunFailed):
        state.status = "failed"
        state.error = event.error
        state.finished_at = at
    elif isinstance(event, CancelRequested):
        state.cancel_requested = True
    elif isinstance(event, RunCancelled):
        state.status = "cancelled"
        state.finished_at = at


def fold(run_id: str, events: Iterable[LoggedEvent]) -> RunState:
    state = RunState(run_id=run_id)
    for logged in events:
        apply(state, logged.seq, logged.at, logged.event)
    return state
