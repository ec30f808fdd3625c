"""Workflow and WorkflowBuilder: the document's two ways of declaring a workflow.

    workflow = Workflow("payment_processing", "Payment Processing")
    workflow.add_step(ToolStep("process_payment", payment_tool, {"amount": 100}))
    workflow.add_error_handler("process_payment", handler)

    workflow = WorkflowBuilder("onboarding", "Customer Onboarding") \\
        .add_agent_step("welcome", welcome_agent, "Welcome new customer") \\
        .add_tool_step("create_account", account_tool, {"type": "standard"}) \\
        .build()

A workflow is registered as a durable workflow named by its id, version `version` ("1"
unless given), fingerprinted by durable.flow._fingerprint, and run by durable.flow._run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from durable._errors import WorkflowDefinitionError
from durable._ids import check_id
from durable.flow._context import WorkflowContext
from durable.flow._fingerprint import fingerprint
from durable.flow._plan import Plan, WorkflowLogger
from durable.flow._resolve import Catalog
from durable.flow._results import WorkflowResult
from durable.flow._steps import AgentStep, ToolStep, WorkflowStep

if TYPE_CHECKING:
    from durable.runtime._registry import Registry, WorkflowDef


class Runner(Protocol):
    """What Workflow.execute() runs on: sdk.workflows.WorkflowEngine."""

    async def execute_workflow(
        self, workflow: Workflow, context: WorkflowContext
    ) -> WorkflowResult: ...


# Set by sdk.workflows: the engine Workflow.execute() uses when given none (an App on
# $DURABLE_DATABASE_URL, else ./durable.db). A hook, so this layer does not import the SDK.
default_runner: Callable[[], Runner] | None = None


class Workflow:
    def __init__(
        self,
        workflow_id: str,
        name: str | None = None,
        description: str | None = None,
        *,
        version: str = "1",
    ) -> None:
        self.workflow_id = check_id("workflow id", workflow_id)
        self.name = name or workflow_id
        self.description = description
        self.version = check_id("workflow version", str(version))
        self.steps: list[WorkflowStep] = []
        self.error_handlers: dict[str, Callable[..., Any]] = {}
        self.error_handler: Callable[..., Any] | None = None
        self.logger: WorkflowLogger | None = None

    def add_step(self, step: WorkflowStep) -> Workflow:
        if not isinstance(step, WorkflowStep):
            raise WorkflowDefinitionError(
                f"workflow {self.workflow_id!r}: add_step() needs a step (AgentStep, ToolStep, "
                f"ConditionalStep, ParallelStep, LoopStep), got {type(step).__name__}"
            )
        self.steps.append(step)
        return self

    def add_error_handler(
        self, step_id: str, handler: Callable[[Any, WorkflowContext], Any]
    ) -> Workflow:
        """When step `step_id` fails for good, `handler(step_result, context)` may return a
        step to run in its place (a retry, a fallback); None lets the failure stand."""
        if not callable(handler):
            raise WorkflowDefinitionError(f"error handler for {step_id!r} must be a function")
        self.error_handlers[check_id("step id", step_id)] = handler
        return self

    def with_error_handler(self, handler: Callable[[Any, Any, Any], Any]) -> Workflow:
        """`handler(error, step, context)` for any step that fails for good (after its own
        handler, if any): returns {"action": "retry"} (run the step again, at most 3 times),
        {"action": "continue"} (go on without it) or {"action": "fail"}; other keys
        (escalate, notify_team...) are kept in the step's result as `handling`."""
        if not callable(handler):
            raise WorkflowDefinitionError("the workflow's error handler must be a function")
        self.error_handler = handler
        return self

    def with_logger(self, logger: WorkflowLogger) -> Workflow:
        self.logger = logger
        return self

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.workflow_id,
            "version": self.version,
            "steps": [s.describe() for s in self.steps],
            "handlers": dict(sorted(self.error_handlers.items())),
            "on_error": self.error_handler,
        }

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.describe())

    def plan(self, catalog: Catalog, model: Any, max_crashes: int) -> Plan:
        if not self.steps:
            raise WorkflowDefinitionError(f"workflow {self.workflow_id!r} has no steps")
        plan = Plan(
            name=self.workflow_id,
            steps=list(self.steps),
            step_handlers=dict(self.error_handlers),
            workflow_handler=self.error_handler,
            logger=self.logger,
            catalog=catalog,
            model=model,
            max_crashes=max_crashes,
        )
        plan.check()
        return plan

    def register(self, registry: Registry, catalog: Catalog, model: Any = None) -> WorkflowDef:
        """Register this workflow in `registry` as a durable workflow (id, version)."""
        from durable.flow._run import run_flow
        from durable.runtime._context import Context, current_executor

        plan = self.plan(catalog, model, registry.max_step_crashes)

        async def body(ctx: Context, context: Any) -> Any:
            executor = current_executor.get()
            assert executor is not None, "a builder workflow runs only inside a run"
            return await run_flow(ctx, executor, plan, context)

        body.__name__ = body.__qualname__ = self.workflow_id
        return registry.add_flow(
            body, name=self.workflow_id, version=self.version, fingerprint=self.fingerprint
        )

    async def execute(
        self, context: WorkflowContext, engine: Runner | None = None
    ) -> WorkflowResult:
        """Run the workflow durably to its end (see WorkflowEngine.execute_workflow)."""
        if engine is None:
            if default_runner is None:
                raise RuntimeError(
                    "no engine to run the workflow on: import sdk.workflows, or pass "
                    "engine=WorkflowEngine(app)"
                )
            engine = default_runner()
        return await engine.execute_workflow(self, context)

    def __repr__(self) -> str:
        return f"<Workflow {self.workflow_id!r} v{self.version} ({len(self.steps)} steps)>"


class WorkflowBuilder:
    def __init__(self, workflow_id: str, name: str | None = None, *, version: str = "1") -> None:
        self._workflow = Workflow(workflow_id, name, version=version)

    def description(self, text: str) -> WorkflowBuilder:
        self._workflow.description = text
        return self

    def version(self, version: str) -> WorkflowBuilder:
        self._workflow.version = check_id("workflow version", str(version))
        return self

    def add_step(self, step: WorkflowStep) -> WorkflowBuilder:
        self._workflow.add_step(step)
        return self

    def add_agent_step(
        self, step_id: str, agent: Any = None, message: str | None = None
    ) -> WorkflowBuilder:
        return self.add_step(AgentStep(step_id, agent, message))

    def add_tool_step(
        self, step_id: str, tool: Any = None, args: Mapping[str, Any] | None = None
    ) -> WorkflowBuilder:
        return self.add_step(ToolStep(step_id, tool, args))

    def add_error_handler(
        self, step_id: str, handler: Callable[[Any, WorkflowContext], Any]
    ) -> WorkflowBuilder:
        self._workflow.add_error_handler(step_id, handler)
        return self

    def with_error_handler(self, handler: Callable[[Any, Any, Any], Any]) -> WorkflowBuilder:
        self._workflow.with_error_handler(handler)
        return self

    def with_logger(self, logger: WorkflowLogger) -> WorkflowBuilder:
        self._workflow.with_logger(logger)
        return self

    def build(self) -> Workflow:
        return self._workflow
