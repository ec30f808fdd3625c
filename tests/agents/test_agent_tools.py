"""Tools of durable agents: each call a step with its own retry policy, ModelRetry as an
outcome, app steps as tools (recorded as themselves), per-tool durable settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_helpers import (
    MODEL_STEP,
    TOOL_STEP,
    make_app,
    step_events,
    weather_model,
)
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from durable import replay
from durable.agents import DurableAgent, step_tool
from sdk import (
    Context,
    InvalidIdError,
    RetryPolicy,
    RunFailed,
    WorkflowDefinitionError,
)


async def test_tools_follow_their_retry_policy(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    attempts: list[str] = []
    agent = Agent(weather_model([]), name="support")

    @agent.tool_plain(metadata={"durable": {"retry": RetryPolicy(3, initial_delay=0.01)}})
    async def get_weather(city: str) -> str:
        attempts.append(city)
        if len(attempts) < 3:
            raise ConnectionError("weather service down")
        return "sunny"

    support = app.agent(agent)

    @app.workflow()
    async def ask(ctx: Context) -> str:
        return (await support.run("weather?")).output

    async with app:
        assert await app.run(ask, run_id="r1") == "It is sunny in Paris."
        events = await app.events("r1")
    assert attempts == ["Paris"] * 3
    assert step_events(events).count(("failed", TOOL_STEP)) == 2


async def test_a_tool_calling_app_steps(tmp_path: Path) -> None:
    """A tool that only calls app steps runs in the workflow with metadata={"durable": False}:
    the app steps record themselves, under their own names; without it, they are plain calls
    inside the tool's step, not recorded twice."""
    app = make_app(tmp_path)
    lookups: list[str] = []

    @app.step()
    async def lookup(city: str) -> str:
        lookups.append(city)
        return "rainy"

    inline = Agent(weather_model([]), name="inline")

    @inline.tool_plain(metadata={"durable": False})
    async def get_weather(city: str) -> str:
        return await lookup(city)

    wrapped = Agent(weather_model([]), name="support")

    @wrapped.tool_plain(name="get_weather")
    async def get_weather_in_step(city: str) -> str:
        return await lookup(city)

    inline_agent, wrapped_agent = app.agent(inline), app.agent(wrapped)

    @app.workflow()
    async def ask(ctx: Context, which: str) -> str:
        agent = inline_agent if which == "inline" else wrapped_agent
        return (await agent.run("weather?")).output

    async with app:
        assert await app.run(ask, "inline", run_id="i1") == "It is rainy in Paris."
        assert await app.run(ask, "wrapped", run_id="i2") == "It is rainy in Paris."
        inline_events, wrapped_events = await app.events("i1"), await app.events("i2")
        assert (await replay("i1", inline_events, app.registry)).deterministic
    assert lookups == ["Paris", "Paris"]
    assert [n for k, n in step_events(inline_events) if k == "completed"] == [
        "inline.model_request",
        "lookup",
        "inline.model_request",
    ]
    assert [n for k, n in step_events(wrapped_events) if k == "completed"] == [
        MODEL_STEP,
        TOOL_STEP,
        MODEL_STEP,
    ]


async def test_a_tool_asking_the_model_to_retry_is_an_outcome_not_a_failure(
    tmp_path: Path,
) -> None:
    """ModelRetry is Pydantic AI's control flow: recorded as the tool call's result (the model
    sees the retry prompt), not retried by the engine."""
    app = make_app(tmp_path)
    cities: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [
            p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)
        ]
        if any(p.outcome == "success" for p in returns):
            return ModelResponse(parts=[TextPart("done")])
        retried = bool(returns)  # the tool's ModelRetry came back as a "retried" return
        city = "Paris" if retried else "Atlantis"
        return ModelResponse(parts=[ToolCallPart("get_weather", {"city": city})])

    agent = Agent(FunctionModel(respond), name="support")

    @agent.tool_plain
    async def get_weather(city: str) -> str:
        cities.append(city)
        if city == "Atlantis":
            raise ModelRetry("no such city")
        return "sunny"

    support = app.agent(agent)

    @app.workflow()
    async def ask(ctx: Context) -> str:
        return (await support.run("weather?")).output

    async with app:
        assert await app.run(ask, run_id="mr") == "done"
        events = await app.events("mr")
        assert (await replay("mr", events, app.registry)).deterministic
    assert cities == ["Atlantis", "Paris"]
    assert [n for k, n in step_events(events) if k == "completed"] == [
        MODEL_STEP,
        TOOL_STEP,
        MODEL_STEP,
        TOOL_STEP,
        MODEL_STEP,
    ]
    assert not [k for k, _ in step_events(events) if k == "failed"]


async def test_an_app_step_as_a_tool_is_recorded_as_itself(tmp_path: Path) -> None:
    """step_tool(step): the tool call is the app step, under its own name and retry policy,
    with no tool step around it."""
    app = make_app(tmp_path)
    attempts: list[tuple[int, int]] = []

    @app.step(retry=RetryPolicy(2, initial_delay=0.01))
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        attempts.append((a, b))
        if len(attempts) == 1:
            raise ConnectionError("calculator down")
        return a + b

    @app.step()
    def shout(text: str) -> str:
        """Upper-case a text (a sync step, run in a worker thread)."""
        return text.upper()

    helper = app.agent(Agent(TestModel(), name="helper", tools=[step_tool(add), step_tool(shout)]))

    @app.workflow()
    async def work(ctx: Context) -> str:
        return (await helper.run("go")).output

    async with app:
        output = await app.run(work, run_id="st")
        events = await app.events("st")
        assert (await replay("st", events, app.registry)).deterministic
    assert '"add":0' in output and '"shout":"A"' in output
    assert step_events(events) == [
        ("started", "helper.model_request"),
        ("completed", "helper.model_request"),
        ("started", "add"),
        ("failed", "add"),
        ("started", "add"),
        ("completed", "add"),
        ("started", "shout"),
        ("completed", "shout"),
        ("started", "helper.model_request"),
        ("completed", "helper.model_request"),
    ]
    # Outside a workflow: plain calls.
    plain = await DurableAgent(Agent(TestModel(), tools=[step_tool(shout)]), name="p").run("go")
    assert plain.output == '{"shout":"A"}'


async def test_durable_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(WorkflowDefinitionError, match="model_timeout"):
        DurableAgent(Agent(TestModel()), name="x", model_timeout=0)
    with pytest.raises(WorkflowDefinitionError, match="max_step_crashes"):
        DurableAgent(Agent(TestModel()), name="x", max_step_crashes=0)
    with pytest.raises(InvalidIdError):
        DurableAgent(Agent(TestModel()), name="bad\nname")

    app = make_app(tmp_path)
    agent: Agent[None, str] = Agent(TestModel(), name="helper")

    @agent.tool_plain(metadata={"durable": {"retries": 3}})
    def add(a: int, b: int) -> int:
        return a + b

    helper = app.agent(agent)

    @app.workflow()
    async def work(ctx: Context) -> str:
        return (await helper.run("go")).output

    async with app:
        with pytest.raises(RunFailed, match=r"unknown durable settings \['retries'\]"):
            await app.run(work, run_id="bad")
