"""A finished (or running) DAG run as users read it: `app.run_dag()`, `durable run --output`."""

from __future__ import annotations

from typing import Any

import msgspec

from durable._codec import decode_value
from durable._state import RunState

from ._loops import top_level
from ._model import DagDefinition
from ._report import DeliveryReport, StepReport, delivery_reports, step_reports


class DagResult(msgspec.Struct, omit_defaults=True):
    run_id: str
    workflow: str
    version: str
    status: str  # pending, running, succeeded, partial, failed, cancelled
    completed_count: int
    failed_count: int
    skipped_count: int
    total_count: int
    duration_seconds: float | None = None
    output: Any = None
    error: str | None = None
    steps: dict[str, StepReport] = {}
    # Every notification and webhook of the run, and how many could not be delivered: they
    # do not change the run's status, but a summary that left them out would hide them.
    notifications: list[DeliveryReport] = []
    notifications_failed: int = 0

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def dag_result(definition: DagDefinition, state: RunState) -> DagResult:
    reports = step_reports(definition, state)
    deliveries = delivery_reports(definition, state)
    # Counted like the run's outcome: a loop over a body is one step (its body steps are in
    # `steps`, each with its last iteration).
    top = {s.id for s in top_level(definition).steps}
    by_status = [r.status for sid, r in reports.items() if sid in top]
    duration = None
    if state.created_at is not None and state.finished_at is not None:
        duration = round(state.finished_at - state.created_at, 6)
    return DagResult(
        run_id=state.run_id,
        workflow=state.workflow,
        version=state.version,
        status=state.status,
        completed_count=by_status.count("succeeded"),
        failed_count=by_status.count("failed"),
        skipped_count=by_status.count("skipped"),
        total_count=len(by_status),
        duration_seconds=duration,
        output=decode_value(state.result) if state.result is not None else None,
        error=str(state.error) if state.error is not None else None,
        steps=reports,
        notifications=deliveries,
        notifications_failed=sum(d.status == "failed" for d in deliveries),
    )
