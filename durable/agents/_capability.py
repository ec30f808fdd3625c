"""The Pydantic AI capability that makes an agent's runs durable inside a workflow.

Built on Pydantic AI's engine-builder surface, like its Temporal, DBOS and Prefect
integrations: the base owns the model and toolset wrapping, and this engine contributes its
durable unit (a step of the run, see _steps), what "inside the durable container" means (a
workflow's task) and replay-safe run ids, start times and sleeps.

Outside a workflow the capability is transparent: the agent runs as a plain Pydantic AI agent.
"""

from __future__ import annotations

import contextvars
import itertools
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic_ai._agent_graph import set_agent_graph_sleep
from pydantic_ai.agent import EventStreamHandler
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    DurabilityEngineSpec,
    DurableOperationBackend,
    DurableOperationId,
    RoleBasedOperationConfig,
    conversation_id_from_run_id,
)
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import AgentDepsT, DeferredToolRequests, DeferredToolResults, RunContext

from durable.agents._approvals import decide_approvals, handles_deferred_itself
from durable.agents._steps import (
    StepBackend,
    StepConfig,
    StepSettings,
    check_timeout,
    non_retrying,
)
from durable.runtime._context import Context, WorkflowRuntime, current_executor
from durable.runtime._registry import (
    DEFAULT_MAX_CRASHES,
    NO_RETRY,
    RetryPolicy,
    check_max_crashes,
)

# Agent runs started so far by each run's execution: the n-th gets run id "<run id>:agent:<n>",
# the same on every re-execution since the workflow code starts them in the same order.
_agent_runs: weakref.WeakKeyDictionary[WorkflowRuntime, itertools.count[int]] = (
    weakref.WeakKeyDictionary()
)

# A model request that fails is tried again (rate limits, timeouts, 5xx) unless told otherwise.
DEFAULT_MODEL_RETRY = RetryPolicy(max_attempts=3, initial_delay=1.0, backoff=2.0, max_delay=30.0)
# A tool is not: it may have side effects.
DEFAULT_TOOL_RETRY = NO_RETRY

# The output type a run was given in place of the agent's (DurableAgent.run(output_type=...)),
# which decides whether the workflow handles approvals itself; None: the agent's.
run_output_type: contextvars.ContextVar[tuple[Any] | None] = contextvars.ContextVar(
    "durable_agent_run_output_type", default=None
)


@dataclass(init=False, kw_only=True)
class Durability(BaseDurabilityCapability[AgentDepsT]):
    """Makes an agent durable inside a workflow: each model request and each tool call of its
    loop is a step of the run (see durable.agents). Attach it to an agent
    (`Agent(..., name="support", capabilities=[Durability()])`) or wrap one with
    `DurableAgent(agent)` / `app.agent(agent)`.

    model_retry / tool_retry: the RetryPolicy of model-request and tool-call steps (default:
    3 attempts for model requests, one for tools). Per tool: `metadata={"durable": {"retry":
    RetryPolicy(...), "timeout": 30.0}}`, or `metadata={"durable": False}` to run the tool in the
    workflow itself with no step of its own (for a tool that only calls app steps, which then
    record themselves under their own names and policies).

    event_stream_handler: streamed model events reach it live from inside the model-request
    step; the other events (tool calls and results...) each in a step of their own
    (`<name>.event`), so a re-execution does not deliver them again.

    approvals: a tool call that needs approval (`requires_approval=True`, or a tool raising
    ApprovalRequired) is recorded (`<name>.approval_request`) and waits, parked, for a decision
    (app.approve()/app.deny(), `durable approve`, the HTTP API, the dashboard); then the same
    agent run goes on with it. None (the default): on, unless the run's output type includes
    DeferredToolRequests (the workflow handles them itself); True: always; False: never.
    """

    engine_spec = DurabilityEngineSpec(
        engine_name="durable",
        durable_unit_noun="step",
        durable_unit_plural="steps",
        durable_container_noun="workflow",
        # Results are stored msgpack-encoded: reduce them to JSON-shaped values with Pydantic
        # AI's own type adapters first (and rebuild them with the same on the way out).
        codec=JSON_CODEC,
        serialization_failure=lambda exc: UserError(f"cannot record the value: {exc}"),
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        wrapped_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
        toolset_lifecycles={
            "function": "enter-always",
            "mcp": "enter-in-durable-unit",
            "dynamic": "enter-never",
        },
        journal_discovery=True,
        # Steps take their position when called: tool calls run one after the other, so the
        # positions are the same on every execution whatever order parallel calls would end in.
        sequential_tools_in_durable_context=True,
        tool_config_key="durable",
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[AgentDepsT] | None = None,
        model_retry: RetryPolicy = DEFAULT_MODEL_RETRY,
        tool_retry: RetryPolicy = DEFAULT_TOOL_RETRY,
        model_timeout: float | None = None,
        tool_timeout: float | None = None,
        max_step_crashes: int = DEFAULT_MAX_CRASHES,
        approvals: bool | None = None,
    ) -> None:
        super().__init__(models=models, event_stream_handler=event_stream_handler, name=name)
        check_max_crashes("max_step_crashes", max_step_crashes)
        if approvals is not None and not isinstance(approvals, bool):
            raise TypeError(f"approvals must be True, False or None, not {approvals!r}")
        self._approvals = approvals
        self._max_crashes = max_step_crashes
        self._model_settings = StepSettings(
            retry=non_retrying(model_retry),
            timeout=check_timeout("model_timeout", model_timeout),
            max_crashes=max_step_crashes,
        )
        self._tool_settings = StepSettings(
            retry=non_retrying(tool_retry),
            timeout=check_timeout("tool_timeout", tool_timeout),
            max_crashes=max_step_crashes,
        )
        self._other_settings = StepSettings(
            retry=non_retrying(NO_RETRY), timeout=None, max_crashes=max_step_crashes
        )

    # -- what the base asks of an engine ------------------------------------------------

    @property
    def in_durable_context(self) -> bool:
        return current_executor.get() is not None

    def get_durable_operation_backend(self) -> DurableOperationBackend[StepConfig]:
        resolve = self._build_resolve_tool_config({})

        def tool_config(
            operation_id: DurableOperationId, tool: object | None, tool_name: str
        ) -> StepConfig | Literal[False]:
            config = resolve(tool, tool_name)  # type: ignore[arg-type]
            if config is False:
                return False
            return dict(config)

        return StepBackend(
            agent_name=self.name,
            config=RoleBasedOperationConfig[StepConfig](
                model={}, event={}, capability={}, tool={}, resolve_tool=tool_config
            ),
            defaults={
                "model": self._model_settings,
                "tool": self._tool_settings,
                "default": self._other_settings,
            },
        )

    def get_default_run_id(self) -> str | None:
        executor = current_executor.get()
        if executor is None:
            return None
        counter = _agent_runs.setdefault(executor, itertools.count(1))
        return f"{executor.state.run_id}:agent:{next(counter)}"

    def get_default_conversation_id(self, run_id: str) -> str | None:
        return conversation_id_from_run_id(run_id) if self.in_durable_context else None

    async def get_run_start_time(self, run_id: str) -> datetime | None:
        executor = current_executor.get()
        if executor is None:
            return None
        # Recorded (ctx.now()), so a run's timeout= counts from its first start after a crash.
        return Context(executor).now().astimezone(UTC)

    async def handle_deferred_tool_calls(
        self, ctx: RunContext[AgentDepsT], *, requests: DeferredToolRequests
    ) -> DeferredToolResults | None:
        """Inside a workflow, the calls needing approval wait for their decisions (see
        durable.agents._approvals); calls for external execution are left to the workflow."""
        executor = current_executor.get()
        if executor is None or not requests.approvals or not self._handles_approvals(ctx):
            return None
        assert self.name is not None
        return await decide_approvals(executor, self.name, requests.approvals, self._max_crashes)

    def _handles_approvals(self, ctx: RunContext[AgentDepsT]) -> bool:
        if self._approvals is not None:
            return self._approvals
        given = run_output_type.get()
        output_type = given[0] if given is not None else getattr(ctx.agent, "output_type", None)
        return not handles_deferred_itself(output_type)

    async def wrap_run(
        self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        executor = current_executor.get()
        if executor is None:
            return await super().wrap_run(ctx, handler=handler)
        async with _durable_sleeps(executor):
            return await super().wrap_run(ctx, handler=handler)


@asynccontextmanager
async def _durable_sleeps(executor: WorkflowRuntime) -> AsyncIterator[None]:
    """The agent loop's own waits (between polls of a background response...) become durable
    timers: a re-execution does not wait them again."""
    ctx = Context(executor)

    async def sleep(seconds: float) -> None:
        await ctx.sleep(seconds)

    with set_agent_graph_sleep(sleep):
        yield
