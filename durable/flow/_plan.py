"""A builder workflow ready to run: its steps with their tools and agents resolved.

Made when the workflow is registered (so an unknown tool or agent name, a conditional without
a condition or two steps with one id fail before any run starts) and shared by every run of
it in this process. Steps error handlers return at run time are resolved when they run.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from durable._errors import WorkflowDefinitionError
from durable.flow._resolve import Catalog, ResolvedTool, default_model
from durable.flow._steps import AgentStep, ConditionalStep, ToolStep, WorkflowStep, walk


class WorkflowLogger:
    """Hooks called as steps start and finish, live only (a replay doesn't call them again).
    Subclass and pass to WorkflowBuilder.with_logger()."""

    def log_step_start(self, step_name: str, state: Any) -> None:
        return None

    def log_step_complete(self, step_name: str, result: Any, duration_ms: float) -> None:
        return None

    def log_step_error(self, step_name: str, error: str, state: Any) -> None:
        return None


@dataclasses.dataclass
class Plan:
    name: str
    steps: list[WorkflowStep]
    step_handlers: dict[str, Callable[..., Any]]
    workflow_handler: Callable[..., Any] | None
    logger: WorkflowLogger | None
    catalog: Catalog
    model: Any
    max_crashes: int
    _tools: dict[int, ResolvedTool] = dataclasses.field(default_factory=dict)
    _agents: dict[int, Any] = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        seen: dict[str, WorkflowStep] = {}
        for step in walk(self.steps):
            if step.step_id in seen and seen[step.step_id] is not step:
                raise WorkflowDefinitionError(
                    f"workflow {self.name!r}: two steps have the id {step.step_id!r}; step ids "
                    "name steps in the run's log and in its results, so they must be unique"
                )
            seen[step.step_id] = step
            if isinstance(step, ConditionalStep) and step.predicate is None:
                raise WorkflowDefinitionError(
                    f"workflow {self.name!r}: conditional step {step.step_id!r} has no "
                    "condition; give one: ConditionalStep(id, condition=...) or .condition(fn)"
                )
            if isinstance(step, ToolStep):
                self.tool(step)
            elif isinstance(step, AgentStep):
                self.agent(step)
        unknown = sorted(set(self.step_handlers) - set(seen))
        if unknown:
            raise WorkflowDefinitionError(
                f"workflow {self.name!r}: error handler for unknown step(s) "
                f"{', '.join(map(repr, unknown))}; its steps are {', '.join(map(repr, seen))}"
            )

    def tool(self, step: ToolStep) -> ResolvedTool:
        found = self._tools.get(id(step))
        if found is None:
            found = self._tools[id(step)] = self.catalog.tool(step.step_id, step.tool)
        return found

    def agent(self, step: AgentStep) -> Any:
        """The step's agent made durable (durable.agents), with the engine's default model if
        it was declared without one: a copy gets it, the agent itself is left as it is."""
        found = self._agents.get(id(step))
        if found is not None:
            return found
        agent = self.catalog.agent(step.step_id, step.agent)
        if hasattr(agent, "capability") and hasattr(agent, "agent"):  # already a DurableAgent
            found = agent
        else:
            from durable.agents import DurableAgent

            if getattr(agent, "model", None) is None:
                model = default_model(self.model)
                if model is None:
                    raise WorkflowDefinitionError(
                        f"step {step.step_id!r}: agent {getattr(agent, 'name', None)!r} has no "
                        "model; give it one (Agent('openai:gpt-4o', ...)), or a default: "
                        'WorkflowEngine(model=...) or $DURABLE_AGENT_MODEL ("test" for '
                        "Pydantic AI's offline TestModel)"
                    )
                agent = copy.copy(agent)
                agent.model = model
            name = getattr(agent, "name", None) or step.step_id
            found = DurableAgent(agent, name=name, max_step_crashes=self.max_crashes)
        self._agents[id(step)] = found
        return found
