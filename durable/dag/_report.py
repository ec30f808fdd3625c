"""What a DAG run's log says about each of its steps: a pure view over the folded state.

The log names each unit of work: a plain step by its id, a matrix instance `id[i]` (i indexes
the matrix combinations in order), a loop iteration `id#n` (n from 1), and the engine's own
notification deliveries `@...`. Step ids cannot contain `[`, `]`, `#` or `@`, so the names
never collide. The executor and every reader (CLI, SDK, --output) use this one view.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import msgspec

from durable._codec import decode_value
from durable._state import RunState, StepState

from ._loops import loop_owners
from ._model import DagDefinition, DagStep

DELIVERY_PREFIX = "@"


def matrix_combos(step: DagStep) -> list[dict[str, Any]]:
    """The matrix's combinations, in a fixed order (keys as declared, values as listed)."""
    if not step.matrix:
        return [{}]
    keys = list(step.matrix)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(step.matrix[k] for k in keys))
    ]


def instance_name(step_id: str, index: int | None = None, iteration: int | None = None) -> str:
    if index is not None:
        return f"{step_id}[{index}]"
    if iteration is not None:
        return f"{step_id}#{iteration}"
    return step_id


def parse_name(name: str) -> tuple[str, int | None, int | None] | None:
    """(step id, matrix index, loop iteration) for a step instance; None for deliveries."""
    if name.startswith(DELIVERY_PREFIX):
        return None
    if name.endswith("]") and "[" in name:
        step_id, _, index = name[:-1].rpartition("[")
        return step_id, int(index), None
    if "#" in name:
        step_id, _, iteration = name.rpartition("#")
        return step_id, None, int(iteration)
    return name, None, None


class InstanceReport(msgspec.Struct, omit_defaults=True):
    name: str
    status: str
    attempts: int = 0
    matrix: dict[str, Any] | None = None
    iteration: int | None = None
    result: Any = None
    error: str | None = None
    details: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None


class StepReport(msgspec.Struct, omit_defaults=True):
    id: str
    name: str | None
    kind: str
    status: str  # pending, running, succeeded, failed, skipped
    result: Any = None
    error: str | None = None
    details: dict[str, Any] | None = None
    skip_reason: str | None = None
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    instances: list[InstanceReport] = []


class DeliveryReport(msgspec.Struct, omit_defaults=True):
    """One notification or webhook the run sent (or tried to)."""

    name: str  # @notify.on_success[0], @webhook.on_complete, @webhook.on_step.<step>
    channel: str  # slack, email, pagerduty, webhook
    status: str  # running, succeeded, failed
    attempts: int = 0
    error: str | None = None  # why the last attempt failed, in the channel's own words


def delivery_reports(definition: DagDefinition, state: RunState) -> list[DeliveryReport]:
    """The run's deliveries in the order they were first tried."""
    reports = []
    for pos in sorted(state.steps):
        found = state.steps[pos]
        if not found.name.startswith(DELIVERY_PREFIX):
            continue
        error = None
        if found.error is not None and found.status in ("failed", "retrying"):
            reason = (found.error.details or {}).get("reason")
            error = reason if isinstance(reason, str) else found.error.message
        reports.append(
            DeliveryReport(
                name=found.name,
                channel=_channel(definition, found.name),
                status="running" if found.status == "retrying" else found.status,
                attempts=found.attempts,
                error=error,
            )
        )
    return reports


def _channel(definition: DagDefinition, name: str) -> str:
    for kind in ("on_success", "on_failure"):
        prefix = f"{DELIVERY_PREFIX}notify.{kind}["
        if name.startswith(prefix) and name.endswith("]"):
            notes = getattr(definition.notifications, kind)
            index = name[len(prefix) : -1]
            if index.isdigit() and int(index) < len(notes):
                return str(notes[int(index)].type)
    return "webhook"  # @webhook.on_complete / on_failure / on_step.<step>


def _instance(name: str, state: StepState) -> InstanceReport:
    parsed = parse_name(name)
    status = "running" if state.status == "retrying" else state.status
    duration = None
    if state.started_at is not None and state.finished_at is not None:
        duration = round(state.finished_at - state.started_at, 6)
    return InstanceReport(
        name=name,
        status=status,
        attempts=state.attempts,
        iteration=parsed[2] if parsed else None,
        result=decode_value(state.result) if state.result is not None else None,
        error=str(state.error) if state.error is not None and status != "skipped" else None,
        details=state.error.details if state.error is not None else None,
        started_at=state.started_at,
        finished_at=state.finished_at,
        duration_seconds=duration,
    )


def instances_by_step(state: RunState) -> dict[str, dict[str, StepState]]:
    out: dict[str, dict[str, StepState]] = {}
    for step_state in state.steps.values():
        parsed = parse_name(step_state.name)
        if parsed is not None:
            out.setdefault(parsed[0], {})[step_state.name] = step_state
    return out


def step_reports(
    definition: DagDefinition,
    state: RunState,
    loops_done: Mapping[str, bool] | None = None,
) -> dict[str, StepReport]:
    """Every step of the definition as the log has it, in declaration order.

    A loop step whose last iteration succeeded is finished only once its `until` held (or
    max_iterations was reached); that takes JavaScript to know, so the caller says so in
    `loops_done`. Without it a loop counts as finished when the run is. A step in a loop's
    body reports its last iteration (every iteration is in `instances`).
    """
    by_step = instances_by_step(state)
    owners = loop_owners(definition.steps)
    reports: dict[str, StepReport] = {}
    for step in definition.steps:
        instances = by_step.get(step.id, {})
        member = step.id in owners
        reports[step.id] = step_report(step, instances, state, loops_done, member=member)
    return reports


def step_report(
    step: DagStep,
    instances: dict[str, StepState],
    state: RunState,
    loops_done: Mapping[str, bool] | None,
    *,
    member: bool = False,
) -> StepReport:
    """One step's report. `member`: the step is in a loop's body, so its instances are its
    iterations (`id#n`) and it reports the last one."""
    base = StepReport(id=step.id, name=step.name, kind=_kind(step), status="pending")
    if member:
        _last_iteration(base, instances)
        return base
    own = instances.get(step.id)
    if own is not None and own.status == "skipped":
        base.status = "skipped"
        base.skip_reason = own.error.message if own.error is not None else None
        base.finished_at = own.finished_at
        return base
    if own is not None and (step.matrix or step.loop):
        # A matrix or loop step whose condition threw: recorded under its plain id.
        inst = _instance(step.id, own)
        base.status, base.error, base.details = inst.status, inst.error, inst.details
    elif step.matrix:
        combos = matrix_combos(step)
        reports = []
        for i, combo in enumerate(combos):
            found = instances.get(instance_name(step.id, index=i))
            if found is not None:
                inst = _instance(found.name, found)
                inst.matrix = combo
                reports.append(inst)
        base.instances = reports
        finished = [r for r in reports if r.status in ("succeeded", "failed")]
        if len(finished) == len(combos):
            failed = [r for r in finished if r.status == "failed"]
            base.status = "failed" if failed else "succeeded"
            base.result = [r.result for r in reports]
            if failed:
                base.error = f"{len(failed)} of {len(combos)} matrix instances failed: " + (
                    failed[0].error or ""
                )
        elif reports:
            base.status = "running"
    elif step.loop is not None:
        reports = sorted(
            (_instance(name, s) for name, s in instances.items() if name != step.id),
            key=lambda r: r.iteration or 0,
        )
        base.instances = reports
        if reports:
            last = reports[-1]
            base.status = last.status
            if last.status == "succeeded":
                done = (loops_done or {}).get(step.id)
                if done is None:
                    done = state.finished or (last.iteration or 0) >= step.loop.max_iterations
                base.status = "succeeded" if done else "running"
            base.result = last.result
            base.error = last.error
            base.details = last.details
    elif own is not None:
        inst = _instance(step.id, own)
        base.status = inst.status
        base.result = inst.result
        base.error = inst.error
        base.details = inst.details
    _span(base, instances.values())
    return base


def _last_iteration(base: StepReport, instances: dict[str, StepState]) -> None:
    reports = sorted(
        (_instance(n, s) for n, s in instances.items()), key=lambda r: r.iteration or 0
    )
    base.instances = reports
    if reports:
        last = reports[-1]
        base.status = last.status
        base.result, base.error, base.details = last.result, last.error, last.details
        if last.status == "skipped":
            state = instances[last.name]
            base.skip_reason = state.error.message if state.error is not None else None
    _span(base, instances.values())


def _span(report: StepReport, states: Any) -> None:
    starts = [s.started_at for s in states if s.started_at is not None]
    ends = [s.finished_at for s in states if s.finished_at is not None]
    report.attempts = sum(s.attempts for s in states)
    if starts:
        report.started_at = min(starts)
    if ends and report.status in ("succeeded", "failed"):
        report.finished_at = max(ends)
        if report.started_at is not None:
            report.duration_seconds = round(report.finished_at - report.started_at, 6)


def _kind(step: DagStep) -> str:
    return f"action:{step.action}" if step.kind == "action" else step.kind


def step_view(report: StepReport) -> dict[str, Any]:
    """A finished step as expressions see it (see _expr)."""
    result = report.result
    exit_code = None
    stdout = stderr = None
    if isinstance(result, dict) and "exit_code" in result and report.kind == "script":
        exit_code, stdout, stderr = (
            result.get("exit_code"),
            result.get("stdout"),
            result.get("stderr"),
        )
    elif report.details is not None:
        exit_code = report.details.get("exit_code")
        stdout, stderr = report.details.get("stdout"), report.details.get("stderr")
    return {
        "status": report.status,
        "succeeded": report.status == "succeeded",
        "failed": report.status == "failed",
        "skipped": report.status == "skipped",
        "result": result,
        "error": report.error,
        "exit_code": exit_code,
        "stdout": stdout,
        "stderr": stderr,
        "attempts": report.attempts,
    }
