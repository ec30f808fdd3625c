"""A builder workflow's run read back from its log: the StepResults its "flow.step" markers
recorded (for streams and WorkflowResult), and its end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from durable._codec import decode_value
from durable._events import (
    LoggedEvent,
    MarkerRecorded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunResumed,
)
from durable.flow._context import WorkflowContext
from durable.flow._results import StepResult, WorkflowResult
from durable.flow._run import END_MARKER, STEP_MARKER


def step_result(logged: LoggedEvent) -> StepResult | None:
    event = logged.event
    if isinstance(event, MarkerRecorded) and event.kind == STEP_MARKER:
        return StepResult.from_payload(decode_value(event.value))
    return None


async def step_results(events: AsyncIterator[LoggedEvent]) -> AsyncIterator[StepResult]:
    async for logged in events:
        result = step_result(logged)
        if result is not None:
            yield result


def workflow_result(
    run_id: str, workflow_id: str, events: Iterable[LoggedEvent], total_steps: int
) -> WorkflowResult:
    every: dict[int, StepResult] = {}  # by the position of its record
    end: dict[str, Any] | None = None
    finished: str | None = None
    error: str | None = None
    for logged in events:
        event = logged.event
        result = step_result(logged)
        if result is not None:
            assert isinstance(event, MarkerRecorded)
            every[event.pos] = result
        elif isinstance(event, MarkerRecorded) and event.kind == END_MARKER:
            end = decode_value(event.value)
        elif isinstance(event, RunCompleted):
            finished = "completed"
        elif isinstance(event, RunFailed):
            finished, error = "failed", str(event.error)
        elif isinstance(event, RunCancelled):
            finished, error = "cancelled", event.reason or "cancelled"
        elif isinstance(event, RunResumed):  # `durable retry`: it goes on from its log
            finished, error, end = None, None, None
            for pos in event.forget:  # what the retried steps led to is decided again
                every.pop(pos, None)
    status: Any = finished or "running"
    context = WorkflowContext(workflow_id=workflow_id)
    elapsed = 0.0
    if end is not None:
        context = WorkflowContext.from_payload(end["context"])
        elapsed = float(end["execution_time_ms"])
        error = end["error"] or (error if status != "completed" else None)
        if finished is None:
            status = end["status"]
    return WorkflowResult(
        workflow_id=workflow_id,
        run_id=run_id,
        status=status,
        steps=[r for _, r in sorted(every.items()) if r.parent_id is None],
        context=context,
        execution_time_ms=elapsed,
        error=error,
        total_steps=total_steps,
        all_steps=[r for _, r in sorted(every.items())],
    )
