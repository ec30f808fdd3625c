"""The agent workflow document's API (seed 004), durable: `from sdk.workflows import ...`.

    workflow = WorkflowBuilder("order", "Order").add_step(ToolStep("validate", validate)).build()
    engine = WorkflowEngine(App("sqlite:///orders.db"))
    result = await engine.execute_workflow(workflow, WorkflowContext(workflow_id="order-1"))

Every run is a durable run of the app's database: `WorkflowContext.workflow_id` is its run id
(executing again with the same id resumes or returns that run: after a crash, run the same
code again and it continues where the log ends). `Agent` and `Tool` are Pydantic AI's (the
`agents` extra), loaded on first use. See docs/workflows.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import durable.flow._workflow as _workflow_module
from durable import RunHandle
from durable.flow import (
    AgentStep,
    ConditionalStep,
    LoopStep,
    ParallelStep,
    StepError,
    StepResult,
    ToolStep,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowFailedError,
    WorkflowLogger,
    WorkflowResult,
    WorkflowStep,
    register_agent,
    register_tool,
)
from durable.flow._report import step_results, workflow_result
from durable.flow._resolve import Catalog
from sdk._app import App

if TYPE_CHECKING:
    from pydantic_ai import Agent, Tool

__all__ = [
    "Agent",
    "AgentStep",
    "ConditionalStep",
    "LoopStep",
    "ParallelStep",
    "StepError",
    "StepResult",
    "Tool",
    "ToolStep",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowContext",
    "WorkflowEngine",
    "WorkflowFailedError",
    "WorkflowLogger",
    "WorkflowResult",
    "WorkflowStep",
    "execute_workflow_stream",
    "register_agent",
    "register_tool",
]


class WorkflowEngine:
    """Runs builder workflows as durable runs of `app` (default: App(), on
    $DURABLE_DATABASE_URL, else ./durable.db). An app that is not open is opened for each
    call and closed after it; an open one (`async with app:`) is used as it is.

    `tools` / `agents`: what steps may name (a list, named by their names, or a dict), before
    what register_tool()/register_agent() declared. `model`: the model of agents declared
    without one (else $DURABLE_AGENT_MODEL; "test" is Pydantic AI's offline TestModel)."""

    def __init__(
        self,
        app: App | None = None,
        *,
        tools: Iterable[Any] | Mapping[str, Any] = (),
        agents: Iterable[Any] | Mapping[str, Any] = (),
        model: Any = None,
    ) -> None:
        self.app = app if app is not None else App()
        self.catalog = Catalog(tools, agents)
        self.model = model
        self._opened = 0

    def register(self, workflow: Workflow) -> None:
        """Register `workflow` in the app (done by every call below): a worker process
        running the app needs it registered to run its runs."""
        workflow.register(self.app.registry, self.catalog, self.model)

    async def start(self, workflow: Workflow, context: WorkflowContext | None = None) -> RunHandle:
        """Start (or find, by `context.workflow_id`) the workflow's run; don't wait."""
        self.register(workflow)
        context = context if context is not None else WorkflowContext()
        return await self.app.start(
            workflow.workflow_id,
            context.to_payload(),
            run_id=context.workflow_id or None,
            version=workflow.version,
        )

    async def execute_workflow(
        self, workflow: Workflow, context: WorkflowContext | None = None
    ) -> WorkflowResult:
        """Run the workflow to its end: its WorkflowResult (status "completed" or "failed";
        a failure does not raise)."""
        async with self._open():
            handle = await self.start(workflow, context)
            await self.app.engine.client.wait(handle.run_id)
            return await self.result(workflow, handle.run_id)

    async def stream(
        self, workflow: Workflow, context: WorkflowContext | None = None
    ) -> AsyncIterator[StepResult]:
        """Each step's StepResult as it finishes (nested ones too, with their parent_id),
        from the run's log: a run resumed after a crash streams from its first step."""
        async with self._open():
            handle = await self.start(workflow, context)
            async for result in step_results(self.app.watch(handle.run_id)):
                yield result

    async def result(self, workflow: Workflow, run_id: str) -> WorkflowResult:
        """The WorkflowResult of run `run_id` as its log has it now."""
        async with self._open():
            events = await self.app.events(run_id)
        return workflow_result(run_id, workflow.workflow_id, events, len(workflow.steps))

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[None]:
        owned = self._opened > 0 or not self.app.is_open
        if owned and self._opened == 0:
            await self.app.open()
        self._opened += owned
        try:
            yield
        finally:
            self._opened -= owned
            if owned and self._opened == 0:
                await self.app.close()


async def execute_workflow_stream(
    workflow: Workflow,
    context: WorkflowContext | None = None,
    engine: WorkflowEngine | None = None,
) -> AsyncIterator[StepResult]:
    """The document's streaming execution: each step's StepResult as it finishes."""
    async for result in (engine or WorkflowEngine()).stream(workflow, context):
        yield result


def __getattr__(name: str) -> Any:
    if name in ("Agent", "Tool"):  # Pydantic AI's, on first use (the `agents` extra)
        import pydantic_ai

        return getattr(pydantic_ai, name)
    raise AttributeError(f"module 'sdk.workflows' has no attribute {name!r}")


_workflow_module.default_runner = WorkflowEngine
