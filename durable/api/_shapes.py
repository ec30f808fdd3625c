"""A run as the API shows it (003's execution and visualization shapes), built from its log.

DAG runs are shown by step id, with the definition's dependencies. Python runs are shown by
position: step `3:charge` is the step `charge` at position 3, and each depends on the steps
that had ended before it started (what overlapped, under asyncio.gather, is parallel).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from durable._codec import decode_value
from durable._errors import ErrorInfo
from durable._events import LoggedEvent
from durable._state import CANCELLED, RunState, StepState
from durable._usage import StepUsage, Totals, step_usage, steps_usage, totals
from durable._views import event_view, plain
from durable.dag._report import parse_name
from durable.dag._result import dag_result
from durable.runtime._registry import WorkflowDef
from storage import RunRecord

from ._schemas import (
    ErrorBody,
    EventBody,
    ExecutionDetail,
    ExecutionSummary,
    Resources,
    StepResult,
    Visualization,
    VisualStep,
)

_STEP_STATUS = {"succeeded": "success"}


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _span(start: float | None, end: float | None) -> int | None:
    return None if start is None or end is None else ms(end - start)


def summary(record: RunRecord) -> ExecutionSummary:
    return ExecutionSummary(
        execution_id=record.run_id,
        workflow_id=record.workflow,
        version=record.version,
        status=record.status,
        start_time=ms(record.created_at) or 0,
        end_time=ms(record.finished_at),
        duration=_span(record.created_at, record.finished_at),
    )


def encode_cursor(record: RunRecord) -> str:
    raw = msgspec.json.encode([record.created_at, record.run_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError for a cursor this server did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = msgspec.json.decode(raw, type=tuple[float, str])
    except (binascii.Error, msgspec.DecodeError, msgspec.ValidationError, ValueError):
        raise ValueError(f"cursor {cursor!r} is not one this server gave out") from None
    return created, run_id


def _error(info: ErrorInfo | None) -> ErrorBody | None:
    return None if info is None else ErrorBody(type=info.type, message=info.message)


def _step_status(step: StepState) -> str:
    if step.status == "failed" and step.error is not None and step.error.type == CANCELLED:
        return "cancelled"
    return _STEP_STATUS.get(step.status, step.status)


class _Step(msgspec.Struct):
    id: str
    name: str
    status: str
    attempts: int
    duration: int | None
    result: Any
    error: ErrorBody | None
    dependencies: list[str]
    cost: Totals = Totals()


def _resources(cost: Totals) -> Resources | None:
    if cost.cpu_seconds is None or cost.max_rss_kb is None:
        return None
    return Resources(cpu_seconds=cost.cpu_seconds, max_rss_kb=cost.max_rss_kb)


def _python_steps(state: RunState) -> list[_Step]:
    out: list[_Step] = []
    ended: list[tuple[float, str]] = []  # (finished_at, id) of steps ended so far
    for pos, step in sorted(state.steps.items()):
        sid = f"{pos}:{step.name}"
        start = step.started_at
        before = [i for f, i in ended if start is not None and f <= start]
        deps = before[-1:]  # the latest step that had ended: a chain, parallel where overlapped
        out.append(_from_state(sid, step.name, step, deps, totals([step_usage(pos, step)])))
        if step.finished_at is not None:
            ended.append((step.finished_at, sid))
            ended.sort()
    return out


def _from_state(sid: str, name: str, step: StepState, deps: list[str], cost: Totals) -> _Step:
    result = decode_value(step.result) if step.result is not None else None
    error = None if step.status in ("succeeded", "skipped") else _error(step.error)
    return _Step(
        id=sid,
        name=name,
        status=_step_status(step),
        attempts=step.attempts,
        duration=_span(step.started_at, step.finished_at),
        result=plain(result),
        error=error,
        dependencies=deps,
        cost=cost,
    )


def _dag_steps(wf: WorkflowDef, state: RunState) -> list[_Step]:
    assert wf.dag is not None
    definition = wf.dag.definition
    reports = dag_result(definition, state).steps
    cancelled = {
        parsed[0]
        for s in state.steps.values()
        if _step_status(s) == "cancelled" and (parsed := parse_name(s.name)) is not None
    }
    # A step's cost is its instances' (matrix entries, loop iterations) together.
    costs: dict[str, list[StepUsage]] = {}
    for pos, state_step in state.steps.items():
        if (parsed := parse_name(state_step.name)) is not None:
            costs.setdefault(parsed[0], []).append(step_usage(pos, state_step))
    out: list[_Step] = []
    for step in definition.steps:
        report = reports.get(step.id)
        status = "pending" if report is None else _STEP_STATUS.get(report.status, report.status)
        if step.id in cancelled and status == "failed":
            status = "cancelled"
        error = None
        if report is not None and report.error is not None and status != "skipped":
            error = ErrorBody(type="error", message=report.error)
        out.append(
            _Step(
                id=step.id,
                name=step.name or step.id,
                status=status,
                attempts=report.attempts if report is not None else 0,
                duration=ms(report.duration_seconds) if report is not None else None,
                result=plain(report.result) if report is not None else None,
                error=error,
                dependencies=list(step.depends_on),
                cost=totals(costs.get(step.id, [])),
            )
        )
    return out


def steps_of(wf: WorkflowDef | None, state: RunState) -> list[_Step]:
    if wf is not None and wf.dag is not None:
        return _dag_steps(wf, state)
    return _python_steps(state)


def detail(record: RunRecord, state: RunState, wf: WorkflowDef | None) -> ExecutionDetail:
    steps = steps_of(wf, state)
    run = totals(steps_usage(state))
    inputs = decode_value(state.input) if state.input is not None else None
    context: dict[str, Any] = dict(inputs) if isinstance(inputs, dict) else {"input": inputs}
    for step in steps:
        if step.status == "success":
            context[step.id] = step.result
    error = _error(state.error)
    if error is None and record.error is not None:
        error = _error(msgspec.msgpack.decode(record.error, type=ErrorInfo))
    return ExecutionDetail(
        execution_id=record.run_id,
        workflow_id=record.workflow,
        version=record.version,
        status=record.status,
        start_time=ms(record.created_at) or 0,
        end_time=ms(record.finished_at),
        duration=_span(record.created_at, record.finished_at),
        current_steps=[s.id for s in steps if s.status in ("running", "retrying")],
        completed_steps=[s.id for s in steps if s.status == "success"],
        failed_steps=[s.id for s in steps if s.status == "failed"],
        step_results={
            s.id: StepResult(
                step_id=s.id,
                status=s.status,
                attempts=s.attempts,
                duration=s.duration,
                result=s.result,
                error=s.error,
                usage=s.cost.usage,
                resources=_resources(s.cost),
            )
            for s in steps
            if s.status != "pending"
        },
        context=plain(context),
        error=error,
        parent_execution_id=record.parent_run_id,
        forked_from=state.forked_from,
        retries=len(state.resumed),
        generation=state.generation,
        history_start=state.history_start,
        usage=run.usage,
        resources=_resources(run),
    )


def visualization(record: RunRecord, state: RunState, wf: WorkflowDef | None) -> Visualization:
    title = wf.dag.definition.title if wf is not None and wf.dag is not None else None
    return Visualization(
        execution_id=record.run_id,
        workflow_name=title or record.workflow,
        status=record.status,
        duration=_span(record.created_at, record.finished_at),
        steps=[
            VisualStep(
                id=s.id,
                name=s.name,
                status=s.status,
                attempts=s.attempts,
                duration=s.duration,
                dependencies=s.dependencies,
            )
            for s in steps_of(wf, state)
        ],
    )


def event_body(logged: LoggedEvent) -> EventBody:
    view = event_view(logged)
    return EventBody(
        seq=logged.seq,
        at=ms(logged.at) or 0,
        type=logged.type,
        fields={k: plain(v) for k, v in view.fields.items()},
    )
