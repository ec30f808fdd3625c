"""Where a builder step finds its tool or agent: the object given to the step, or a name.

Names are looked up in the WorkflowEngine's own `tools=`/`agents=` first, then in what
register_tool() / register_agent() put in this process's catalog (how the document's
`ToolStep("validate_order")` finds its tool). They are resolved when the workflow is
registered, so an unknown name fails before any run starts, saying what is known.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from durable._errors import WorkflowDefinitionError
from durable._ids import check_id

F = TypeVar("F")

# This process's catalog: what register_tool()/register_agent() declared.
_TOOLS: dict[str, Any] = {}
_AGENTS: dict[str, Any] = {}

MODEL_ENV = "DURABLE_AGENT_MODEL"


@dataclasses.dataclass(frozen=True, slots=True)
class ResolvedTool:
    name: str
    fn: Callable[..., Any]
    params: frozenset[str]  # the keyword parameters it accepts ("*" for **kwargs)


def register_tool(tool: F | None = None, /, *, name: str | None = None) -> Any:
    """Make a tool findable by name (`ToolStep("send_email")`): a function, a Pydantic AI
    Tool or an app step. Works as a decorator, with or without arguments."""

    def add(obj: F) -> F:
        key = check_id("tool name", name or _tool_name(obj))
        existing = _TOOLS.get(key)
        if existing is not None and existing is not obj:
            raise WorkflowDefinitionError(
                f"two different tools are registered as {key!r}; give one of them name=..."
            )
        _TOOLS[key] = obj
        return obj

    return add if tool is None else add(tool)


def register_agent(agent: F, /, *, name: str | None = None) -> F:
    """Make an agent findable by name (`AgentStep("inventory_agent")`)."""
    key = check_id("agent name", name or getattr(agent, "name", None) or "")
    existing = _AGENTS.get(key)
    if existing is not None and existing is not agent:
        raise WorkflowDefinitionError(
            f"two different agents are registered as {key!r}; give one of them name=..."
        )
    _AGENTS[key] = agent
    return agent


class Catalog:
    """The tools and agents one engine knows: its own, then the process's."""

    def __init__(self, tools: Iterable[Any] | Mapping[str, Any] = (), agents: Any = ()) -> None:
        self.tools = _named(tools, _tool_name)
        self.agents = _named(agents, lambda a: getattr(a, "name", None) or "")

    def tool(self, step_id: str, ref: Any) -> ResolvedTool:
        obj = ref if ref is not None else step_id
        if isinstance(obj, str):
            found = self.tools.get(obj, _TOOLS.get(obj))
            if found is None:
                raise WorkflowDefinitionError(
                    f"step {step_id!r}: no tool named {obj!r}; known: "
                    f"{', '.join(sorted(self.tools.keys() | _TOOLS.keys())) or 'none'}. "
                    "Register it with register_tool() or WorkflowEngine(tools=[...]), or "
                    "give the tool itself: ToolStep(id, tool)"
                )
            obj = found
        return _tool(step_id, obj)

    def agent(self, step_id: str, ref: Any) -> Any:
        obj = ref if ref is not None else step_id
        if isinstance(obj, str):
            found = self.agents.get(obj, _AGENTS.get(obj))
            if found is None:
                raise WorkflowDefinitionError(
                    f"step {step_id!r}: no agent named {obj!r}; known: "
                    f"{', '.join(sorted(self.agents.keys() | _AGENTS.keys())) or 'none'}. "
                    "Register it with register_agent() or WorkflowEngine(agents=[...]), or "
                    "give the agent itself: AgentStep(id, agent, message)"
                )
            obj = found
        if not callable(getattr(obj, "run", None)):
            raise WorkflowDefinitionError(
                f"step {step_id!r}: {type(obj).__name__} is not an agent (a Pydantic AI "
                "Agent, or a DurableAgent)"
            )
        return obj


def default_model(given: Any) -> Any:
    """The model for agents declared without one: WorkflowEngine(model=...), else
    $DURABLE_AGENT_MODEL ("test" is Pydantic AI's TestModel; else a model name such as
    "openai:gpt-4o"), else None (Pydantic AI then says the agent has no model)."""
    model = given if given is not None else os.environ.get(MODEL_ENV) or None
    if model == "test":
        from pydantic_ai.models.test import TestModel

        return TestModel()
    return model


def _named(
    objs: Iterable[Any] | Mapping[str, Any], name_of: Callable[[Any], str]
) -> dict[str, Any]:
    if isinstance(objs, Mapping):
        return {check_id("name", k): v for k, v in objs.items()}
    return {check_id("name", name_of(o)): o for o in objs}


def _tool_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(obj, "__name__", ""))


def _tool(step_id: str, obj: Any) -> ResolvedTool:
    name = _tool_name(obj) or step_id
    fn: Any = obj
    if hasattr(obj, "function") and hasattr(obj, "takes_ctx"):  # a Pydantic AI Tool
        if obj.takes_ctx:
            raise WorkflowDefinitionError(
                f"step {step_id!r}: tool {name!r} takes a RunContext, which a ToolStep has "
                "none of (it is not called by an agent); give it plain arguments"
            )
        fn = obj.function
    elif hasattr(obj, "definition") and hasattr(obj.definition, "fn"):  # an app step
        fn = obj.definition.fn
    if not callable(fn):
        raise WorkflowDefinitionError(
            f"step {step_id!r}: the tool must be a function, a Pydantic AI Tool, an app step "
            f"or a registered name, not {type(obj).__name__}"
        )
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        accepted = frozenset({"*"})
    else:
        accepted = frozenset(
            "*" if p.kind is p.VAR_KEYWORD else p.name
            for p in params
            if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)
        )
    return ResolvedTool(name=name, fn=fn, params=accepted)
