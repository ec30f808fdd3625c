"""What a finished graph produced: its output, and the run's end event."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from durable._codec import encode_value
from durable._errors import ErrorInfo
from durable._events import RunCompleted, RunFailed

from ._model import DagStep
from ._report import StepReport
from ._schedule import RunOutcome


def sinks_output(reports: Mapping[str, StepReport], steps: Sequence[DagStep]) -> Any:
    """The result of a graph: its only sink's result, else {sink id: result} (a sink that did
    not succeed gives null)."""
    needed = {dep for s in steps for dep in s.depends_on}
    sinks = [s.id for s in steps if s.id not in needed]
    results = {
        sid: reports[sid].result if sid in reports and reports[sid].status == "succeeded" else None
        for sid in sinks
    }
    return results[sinks[0]] if len(sinks) == 1 else results


def end_event(
    outcome: RunOutcome, reports: Sequence[StepReport], output: Callable[[], Any]
) -> RunCompleted | RunFailed:
    """The run's terminal event for `outcome`; `reports` are the top level's steps."""
    failed = [r for r in reports if r.status == "failed"]
    counts: dict[str, Any] = dict(outcome.counts())
    summary = ", ".join(f"{r.id} ({r.error})" for r in failed[:5])
    message = f"{outcome.failed} of {outcome.total} steps failed: {summary}"
    if outcome.status == "failed":
        return RunFailed(error=ErrorInfo(type="durable.DagFailed", message=message, details=counts))
    result = msgspec.Raw(encode_value(output(), "the DAG run's output"))
    error = None
    if outcome.status == "partial":
        error = ErrorInfo(type="durable.DagPartial", message=message, details=counts)
    return RunCompleted(result=result, status=outcome.status, error=error)
