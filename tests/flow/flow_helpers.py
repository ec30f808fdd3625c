"""What the builder-workflow tests share: an app on a real SQLite file, an engine on it, and
a way to run a workflow to its WorkflowResult."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durable import events as ev
from sdk import App
from sdk.workflows import Workflow, WorkflowContext, WorkflowEngine, WorkflowResult


def make_app(tmp_path: Path, **options: Any) -> App:
    return App(f"sqlite:///{tmp_path / 'x.db'}", poll_interval=0.05, **options)


def make_engine(tmp_path: Path, **options: Any) -> WorkflowEngine:
    return WorkflowEngine(make_app(tmp_path), model="test", **options)


async def run(
    tmp_path: Path,
    workflow: Workflow,
    run_id: str = "r1",
    *,
    engine: WorkflowEngine | None = None,
    **variables: Any,
) -> WorkflowResult:
    """Execute `workflow` once, with `variables` as its initial data."""
    engine = engine or make_engine(tmp_path)
    context = WorkflowContext(workflow_id=run_id, initial_data=variables)
    return await engine.execute_workflow(workflow, context)


def by_id(result: WorkflowResult) -> dict[str, Any]:
    """Every StepResult of the run (nested ones too) by step id (the last one wins)."""
    return {s.step_id: s for s in result.all_steps}


def markers(events: list[ev.LoggedEvent], kind: str) -> list[Any]:
    """The decoded values of the run's markers of `kind`."""
    from durable._codec import decode_value

    return [
        decode_value(e.event.value)
        for e in events
        if isinstance(e.event, ev.MarkerRecorded) and e.event.kind == kind
    ]


def step_names(events: list[ev.LoggedEvent]) -> list[str]:
    """The names of the steps the run started, in order (one per attempt)."""
    return [e.event.name for e in events if isinstance(e.event, ev.StepStarted)]
