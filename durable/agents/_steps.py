"""Pydantic AI's durable operations as steps of the current run.

Pydantic AI hands an engine each model request, tool call, toolset discovery... as an async
callback to run in one named durable unit (`CallableOperationBackend.execute`). Here a unit is
a step of the run the agent is called from: it takes the next position of the run's log, runs
live once and records its result, or returns the recorded result on every later execution.
The body runs with the workflow marker cleared (as every step body does), so an app step a tool
calls inside its unit is a plain call, not a second recorded step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from pydantic import PydanticUserError
from pydantic_ai.durable_exec import (
    CallableOperationBackend,
    DurableOperationId,
    EventStreamHandlerId,
    JournalOperationNamer,
    ModelRequestId,
    RoleBasedOperationConfig,
    ToolsetCallToolId,
)
from pydantic_ai.durable_exec._operation_names import DurableInvocationName
from pydantic_ai.exceptions import UnexpectedModelBehavior, UserError

from durable._durations import check_duration
from durable._errors import WorkflowDefinitionError
from durable._ids import check_id
from durable.agents._records import model_step_input, tool_step_input, unwrap_result, wrap_result
from durable.runtime._context import current_executor
from durable.runtime._registry import RetryPolicy, StepDef

# Per role (model, tool, event, capability) or per tool (metadata={"durable": {...}}):
# {"retry": RetryPolicy, "timeout": seconds}; False for a tool: no step of its own.
StepConfig = Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class StepSettings:
    retry: RetryPolicy
    timeout: float | None
    max_crashes: int


class StepNamer(JournalOperationNamer):
    """Step names as `durable runs show` lists them: `<agent>.model_request`,
    `<agent>.tool.<tool name>`, `<agent>.event`; the other operations (MCP servers, dynamic
    toolsets...) keep Pydantic AI's journal names. Recorded
    in the log and compared on replay: changing them breaks runs in flight."""

    def __init__(self, agent_name: str) -> None:
        super().__init__(agent_name)
        self._agent = agent_name

    def operation_name(self, operation_id: DurableOperationId) -> str:
        if isinstance(operation_id, ModelRequestId):
            suffix = "_stream" if operation_id.streaming else ""
            model = "" if operation_id.model_id is None else f".{operation_id.model_id}"
            return f"{self._agent}.model_request{suffix}{model}"
        if isinstance(operation_id, ToolsetCallToolId) and operation_id.toolset_kind == "function":
            return f"{self._agent}.tool"
        if isinstance(operation_id, EventStreamHandlerId):
            return f"{self._agent}.event"
        return super().operation_name(operation_id)

    def invocation_name(
        self, operation_id: DurableOperationId, *, label: str | None
    ) -> DurableInvocationName:
        name = self.operation_name(operation_id)
        if isinstance(operation_id, ToolsetCallToolId) and label is not None:
            name = (
                f"{name}.{label}" if operation_id.toolset_kind == "function" else f"{name}:{label}"
            )
        return DurableInvocationName(name)


# Errors no retry can fix (as Pydantic AI's Prefect and Temporal integrations judge them): a
# step failing with one fails at once, whatever its RetryPolicy.
NON_RETRYABLE: tuple[type[BaseException], ...] = (
    UserError,
    PydanticUserError,
    UnexpectedModelBehavior,
)


def non_retrying(policy: RetryPolicy) -> RetryPolicy:
    """`policy` with NON_RETRYABLE added to its non_retryable errors."""
    missing = tuple(t for t in NON_RETRYABLE if t not in policy.non_retryable)
    if not missing:
        return policy
    return dataclasses.replace(policy, non_retryable=(*policy.non_retryable, *missing))


def check_timeout(what: str, timeout: Any) -> float | None:
    if timeout is None:
        return None
    return check_duration(what, timeout, positive=True, error=WorkflowDefinitionError)


def settings_of(config: StepConfig | None, default: StepSettings, what: str) -> StepSettings:
    """A tool's own settings (metadata={"durable": {...}}) over the defaults of its role."""
    if not config:
        return default
    unknown = set(config) - {"retry", "timeout"}
    if unknown:
        raise WorkflowDefinitionError(
            f"{what}: unknown durable settings {sorted(unknown)} (known: 'retry', 'timeout')"
        )
    retry = config.get("retry", default.retry)
    if not isinstance(retry, RetryPolicy):
        raise WorkflowDefinitionError(f"{what}: 'retry' must be a RetryPolicy, got {retry!r}")
    timeout = check_timeout(f"{what}: timeout", config.get("timeout", default.timeout))
    return StepSettings(retry=non_retrying(retry), timeout=timeout, max_crashes=default.max_crashes)


class StepBackend(CallableOperationBackend[StepConfig]):
    """Runs each operation's body as a step of the current run (see the module docstring)."""

    def __init__(
        self,
        *,
        agent_name: str,
        config: RoleBasedOperationConfig[StepConfig],
        defaults: Mapping[str, StepSettings],
    ) -> None:
        super().__init__(namer=StepNamer(agent_name), config=config)
        self._defaults = dict(defaults)

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: StepConfig,
    ) -> object:
        executor = current_executor.get()
        if executor is None:  # outside a workflow (or inside a step body): a plain call
            return await body()
        check_id("agent step name", name)
        role = _role(operation_id)
        settings = settings_of(config, self._defaults[role], f"step {name!r}")
        summary = _input(operation_id, cache_key)

        async def step_body(_input: object) -> object:
            return wrap_result(operation_id, await body())

        step = StepDef(
            name=name,
            fn=step_body,
            is_async=True,
            retry=settings.retry,
            timeout=settings.timeout,
            return_type=Any,
            max_crashes=settings.max_crashes,
        )
        recorded = await executor.call_step(step, (summary,), {})
        return unwrap_result(operation_id, recorded)


def _role(operation_id: DurableOperationId) -> Literal["model", "tool", "default"]:
    if isinstance(operation_id, ModelRequestId):
        return "model"
    if isinstance(operation_id, ToolsetCallToolId):
        return "tool"
    return "default"


def _input(operation_id: DurableOperationId, cache_key: tuple[object, ...]) -> object:
    """What the step's StepStarted records as its input: the new part of the conversation (not
    the whole history again), or the tool's name and arguments."""
    if isinstance(operation_id, ModelRequestId):
        return model_step_input(cache_key)
    if isinstance(operation_id, ToolsetCallToolId):
        return tool_step_input(cache_key)
    return None
