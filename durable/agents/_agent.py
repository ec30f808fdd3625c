"""DurableAgent: any Pydantic AI agent, made durable inside a workflow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic_ai.agent import AbstractAgent, EventStreamHandler
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.models import Model
from pydantic_ai.run import AgentRunResult

from durable._ids import check_id
from durable.agents._capability import (
    DEFAULT_MODEL_RETRY,
    DEFAULT_TOOL_RETRY,
    Durability,
    run_output_type,
)
from durable.runtime._registry import DEFAULT_MAX_CRASHES, RetryPolicy

DepsT = TypeVar("DepsT")
OutputT = TypeVar("OutputT")


class DurableAgent(Generic[DepsT, OutputT]):
    """A Pydantic AI agent whose runs inside a workflow are durable: each model request and each
    tool call is a step of the run, recorded once; after a crash the agent resumes from the
    last recorded step without calling the model or the tool again for it.

        support = app.agent(Agent("openai:gpt-4o", tools=[...]), name="support")

        @app.workflow
        async def answer(ctx: Context, question: str) -> str:
            result = await support.run(question)
            return result.output

    `run` takes what `Agent.run` takes. Outside a workflow it is a plain, non-durable run.
    An `event_stream_handler` given here (not to `run`) is durable too: streamed model events
    reach it live from inside the model-request step, the others from a step each.
    The name names the agent's steps (`support.model_request`, `support.tool.<tool>`): it is
    recorded in the log, so keep it stable while runs using it may be in flight.
    `approvals`: tool calls needing approval wait for app.approve()/app.deny() (see
    Durability).
    """

    def __init__(
        self,
        agent: AbstractAgent[DepsT, OutputT],
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[DepsT] | None = None,
        model_retry: RetryPolicy = DEFAULT_MODEL_RETRY,
        tool_retry: RetryPolicy = DEFAULT_TOOL_RETRY,
        model_timeout: float | None = None,
        tool_timeout: float | None = None,
        max_step_crashes: int = DEFAULT_MAX_CRASHES,
        approvals: bool | None = None,
    ) -> None:
        if not (name or agent.name):
            raise ValueError(
                "a durable agent needs a name, stable across deployments (it names the run's "
                "steps): Agent(..., name='support') or app.agent(agent, name='support')"
            )
        self.agent = agent
        self.name: str = check_id("agent name", name or agent.name)
        self.capability: Durability[DepsT] = Durability(
            name=self.name,
            models=models,
            event_stream_handler=event_stream_handler,
            model_retry=model_retry,
            tool_retry=tool_retry,
            model_timeout=model_timeout,
            tool_timeout=tool_timeout,
            max_step_crashes=max_step_crashes,
            approvals=approvals,
        )

    async def run(
        self,
        user_prompt: Any = None,
        *,
        capabilities: Sequence[AbstractCapability[DepsT]] | None = None,
        **kwargs: Any,
    ) -> AgentRunResult[OutputT]:
        """`Agent.run(user_prompt, **kwargs)`, durable inside a workflow."""
        given = run_output_type.set((kwargs["output_type"],) if "output_type" in kwargs else None)
        try:
            result: AgentRunResult[OutputT] = await self.agent.run(
                user_prompt, capabilities=[*(capabilities or ()), self.capability], **kwargs
            )
        finally:
            run_output_type.reset(given)
        return result

    def __repr__(self) -> str:
        return f"<DurableAgent {self.name!r}>"
