"""What a builder workflow's run reports: a StepResult per step as it finishes (recorded in the
run's log, so a replay and a stream see the same ones) and a WorkflowResult at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from durable.flow._context import WorkflowContext

StepStatus = Literal["success", "failed", "skipped"]
WorkflowStatus = Literal["completed", "failed", "running", "cancelled"]


@dataclass(frozen=True)
class StepResult:
    step_id: str
    status: StepStatus
    output: Any = None
    error: str | None = None
    execution_time_ms: float = 0.0
    step_type: str = ""
    started_at: float | None = None  # epoch seconds, from the run's log
    finished_at: float | None = None
    parent_id: str | None = None  # the parallel/conditional/loop step it ran inside
    # What the error handlers decided, if one was asked: {"action": ..., ...}.
    handling: dict[str, Any] | None = None

    @property
    def is_success(self) -> bool:
        return self.status == "success"

    @property
    def is_failure(self) -> bool:
        return self.status == "failed"

    @property
    def is_skipped(self) -> bool:
        return self.status == "skipped"

    @property
    def success(self) -> bool:  # the document's logger reads `result.success`
        return self.is_success

    def to_payload(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "execution_time_ms": self.execution_time_ms,
            "step_type": self.step_type,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "parent_id": self.parent_id,
            "handling": self.handling,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> StepResult:
        return cls(**payload)


@dataclass(frozen=True)
class WorkflowResult:
    """A run's outcome. `steps` holds the top-level steps in the order they ran (their nested
    steps are in `all_steps`); `success_rate` is the percentage of those that succeeded,
    skipped ones left out of the count."""

    workflow_id: str
    run_id: str
    status: WorkflowStatus
    steps: list[StepResult]
    context: WorkflowContext
    execution_time_ms: float = 0.0
    error: str | None = None
    total_steps: int = 0
    all_steps: list[StepResult] = field(default_factory=list)

    @property
    def total_execution_time_ms(self) -> float:
        return self.execution_time_ms

    @property
    def steps_completed(self) -> int:
        return sum(1 for s in self.steps if s.is_success)

    @property
    def success_rate(self) -> float:
        ran = [s for s in self.steps if not s.is_skipped]
        if not ran:
            return 100.0 if self.status == "completed" else 0.0
        return round(100.0 * sum(1 for s in ran if s.is_success) / len(ran), 1)

    @property
    def is_success(self) -> bool:
        return self.status == "completed"

    @property
    def outputs(self) -> dict[str, Any]:
        return {s.step_id: s.output for s in self.all_steps if s.is_success}


def composite(
    step: Any,
    parent: str | None,
    status: Any,
    output: Any,
    error: str | None,
    children: list[StepResult],
    handling: dict[str, Any] | None,
) -> StepResult:
    """A composite step's result: it ran from its first child's start to its last's end."""
    starts = [c.started_at for c in children if c.started_at is not None]
    ends = [c.finished_at for c in children if c.finished_at is not None]
    span = (min(starts) if starts else None, max(ends) if ends else None)
    return timed(step, parent, status, output, error, span, handling)


def timed(
    step: Any,
    parent: str | None,
    status: Any,
    output: Any,
    error: str | None,
    span: tuple[float | None, float | None],
    handling: dict[str, Any] | None = None,
) -> StepResult:
    """A step's result, its execution time the span (start, end) its log records."""
    started, finished = span
    return StepResult(
        step.step_id,
        status,
        output=output,
        error=error,
        step_type=step.kind,
        parent_id=parent,
        started_at=started,
        finished_at=finished,
        execution_time_ms=elapsed_ms(started, finished),
        handling=handling,
    )


def elapsed_ms(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return 0.0
    return round(max(0.0, end - start) * 1000.0, 3)
