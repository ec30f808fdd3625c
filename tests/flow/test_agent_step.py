"""AgentStep: a Pydantic AI agent run durably inside the builder's run (each model request a
`<agent>.model_request` step, each tool call a `<agent>.tool.<name>` step), with its message
and dependencies taken from the context. Pydantic AI's TestModel / FunctionModel, no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import by_id, make_app, run, step_names
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from durable import RetryPolicy, WorkflowDefinitionError
from durable.agents import DurableAgent
from sdk.workflows import (
    AgentStep,
    ConditionalStep,
    ParallelStep,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
)


def fulfilment_agent(prompts: list[str], tool_deps: list[Any]) -> Agent[dict[str, Any], str]:
    """Looks up the order's status with its tool, then answers with what the tool said."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if not returns:
            first = messages[0]
            assert isinstance(first, ModelRequest)
            prompts.extend(str(p.content) for p in first.parts if isinstance(p, UserPromptPart))
            return ModelResponse(parts=[ToolCallPart("order_status", {}, tool_call_id="c1")])
        return ModelResponse(parts=[TextPart(f"Done: {returns[-1].content}")])

    agent: Agent[dict[str, Any], str] = Agent(
        FunctionModel(respond, model_name="fulfilment-fn"),
        name="fulfilment",
        deps_type=dict,
    )

    @agent.tool
    def order_status(ctx: RunContext[dict[str, Any]]) -> str:
        tool_deps.append(ctx.deps)
        return f"{ctx.deps['order_status']} for a {ctx.deps['customer_tier']} customer"

    return agent


async def test_input_and_context_functions_reach_the_model_and_the_tools(tmp_path: Path) -> None:
    prompts: list[str] = []
    tool_deps: list[Any] = []
    workflow = (
        WorkflowBuilder("fulfil")
        .add_step(
            AgentStep("fulfillment_agent", fulfilment_agent(prompts, tool_deps))
            .with_input_function(
                lambda state: f"Complete order fulfillment for order {state['order_id']}"
            )
            .with_context_function(
                lambda state: {
                    "order_status": state.get("fulfillment_status", "unknown"),
                    "customer_tier": state.get("customer_tier", "standard"),
                }
            )
        )
        .build()
    )
    result = await run(tmp_path, workflow, order_id="ORD-1", customer_tier="premium")
    assert result.status == "completed", result.error
    assert prompts == ["Complete order fulfillment for order ORD-1"]
    assert tool_deps == [{"order_status": "unknown", "customer_tier": "premium"}]
    step = result.steps[0]
    assert step.step_type == "agent"
    assert step.output == "Done: unknown for a premium customer"
    assert result.context.variables["fulfillment_agent"] == step.output  # a str: by step id
    assert step.started_at is not None and step.finished_at is not None
    assert step.execution_time_ms > 0
    async with make_app(tmp_path) as app:
        names = step_names(await app.events("r1"))
    assert names == [
        "fulfilment.model_request",
        "fulfilment.tool.order_status",
        "fulfilment.model_request",
    ]


async def test_an_agent_is_not_asked_again_when_the_run_is_executed_again(tmp_path: Path) -> None:
    prompts: list[str] = []
    tool_deps: list[Any] = []
    agent = fulfilment_agent(prompts, tool_deps)
    workflow = (
        WorkflowBuilder("fulfil_twice")
        .add_step(AgentStep("a", agent, "go").with_context_function(lambda s: dict(s)))
        .build()
    )
    first = await run(tmp_path, workflow, order_status="packed", customer_tier="gold")
    second = await run(tmp_path, workflow, order_status="packed", customer_tier="gold")
    assert second == first and first.steps[0].output == "Done: packed for a gold customer"
    assert len(prompts) == 1 and len(tool_deps) == 1


async def test_an_agent_without_a_model_takes_the_engines_default(tmp_path: Path) -> None:
    agent: Agent[None, str] = Agent(name="welcome_agent")
    workflow = (
        WorkflowBuilder("welcome").add_agent_step("welcome", agent, "Welcome new customer").build()
    )
    result = await run(tmp_path, workflow)  # the helpers' engine: model="test"
    assert result.status == "completed", result.error
    assert isinstance(result.steps[0].output, str) and result.steps[0].output
    assert agent.model is None  # the agent itself is left as it was: a copy got the model
    async with make_app(tmp_path) as app:
        names = step_names(await app.events("r1"))
    assert names and all(n.startswith("welcome_agent.model_request") for n in names)


def test_an_agent_without_a_model_and_no_default_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLE_AGENT_MODEL", raising=False)
    workflow = (
        WorkflowBuilder("no_model").add_agent_step("welcome", Agent(name="welcomer"), "hi").build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    with pytest.raises(WorkflowDefinitionError) as caught:
        engine.register(workflow)
    message = str(caught.value)
    assert "step 'welcome': agent 'welcomer' has no model" in message
    assert "DURABLE_AGENT_MODEL" in message and "WorkflowEngine(model=...)" in message


async def test_the_model_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLE_AGENT_MODEL", "test")
    workflow = (
        WorkflowBuilder("env_model")
        .add_agent_step("welcome", Agent(name="env_agent"), "hi")
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    result = await engine.execute_workflow(workflow, WorkflowContext(workflow_id="r1"))
    assert result.status == "completed", result.error


async def test_agents_by_name(tmp_path: Path) -> None:
    agent: Agent[None, str] = Agent(name="inventory_agent")
    engine = WorkflowEngine(make_app(tmp_path), agents=[agent], model="test")
    workflow = (
        WorkflowBuilder("named_agents")
        .add_step(AgentStep("inventory_agent").with_input("Handle out of stock items"))
        .build()
    )
    result = await engine.execute_workflow(workflow, WorkflowContext(workflow_id="r1"))
    assert result.status == "completed", result.error
    unknown = WorkflowBuilder("unknown_agent").add_step(AgentStep("order_validation_agent")).build()
    with pytest.raises(
        WorkflowDefinitionError,
        match=r"no agent named 'order_validation_agent'; known: .*inventory_agent",
    ):
        engine.register(unknown)
    not_agent = WorkflowBuilder("not_agent").add_step(AgentStep("x", 42)).build()
    with pytest.raises(WorkflowDefinitionError, match="int is not an agent"):
        engine.register(not_agent)


async def test_a_failing_model_fails_the_step(tmp_path: Path) -> None:
    asked: list[int] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        asked.append(1)
        raise ValueError("the model is confused")

    # A DurableAgent given as it is: its own retry policy for model requests holds.
    agent = DurableAgent(
        Agent(FunctionModel(respond), name="confused"),
        model_retry=RetryPolicy(max_attempts=2, initial_delay=0.01),
    )
    workflow = (
        WorkflowBuilder("model_fails")
        .add_agent_step("ask", agent, "hello")
        .add_tool_step("after", lambda: "after")
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert len(asked) == 2
    assert [s.step_id for s in result.steps] == ["ask"]
    assert "the model is confused" in str(result.steps[0].error)


class Verdict(BaseModel):
    order_valid: bool
    reason: str


async def test_structured_output_merges_and_agents_run_in_parallel(tmp_path: Path) -> None:
    judge = Agent(
        TestModel(custom_output_args={"order_valid": True, "reason": "fine"}),
        name="judge",
        output_type=Verdict,
    )
    writer: Agent[None, str] = Agent(name="writer")  # the engine's TestModel
    workflow = (
        WorkflowBuilder("agents_in_parallel")
        .add_step(
            ParallelStep("p", [AgentStep("j", judge, "judge it"), AgentStep("w", writer, "write")])
        )
        .add_step(
            ConditionalStep("c", lambda s: s["order_valid"], AgentStep("w2", writer, "again"))
        )
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "completed", result.error
    # A model's structured output is a dict in the log, merged like a tool's.
    assert result.context.variables["order_valid"] is True
    assert result.context.variables["reason"] == "fine"
    assert result.steps[0].output["j"] == {"order_valid": True, "reason": "fine"}
    assert by_id(result)["w2"].parent_id == "c"
    async with make_app(tmp_path) as app:
        names = step_names(await app.events("r1"))
    assert sorted(names) == ["judge.model_request", "writer.model_request", "writer.model_request"]
