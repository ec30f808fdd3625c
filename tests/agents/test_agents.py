"""Durable Pydantic AI agents inside Python workflows: each model request and each tool call
is a step of the run, recorded once and answered from the log on every later execution.

No network: Pydantic AI's FunctionModel and TestModel stand in for the language model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, ModelRetry, RunContext
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    AgentStreamEvent,
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage

from durable import events as ev
from durable import replay
from durable.agents import Durability, DurableAgent, step_tool
from sdk import (
    App,
    Context,
    InvalidIdError,
    RetryPolicy,
    RunFailed,
    WorkflowDefinitionError,
)

MODEL_STEP = "support.model_request"
TOOL_STEP = "support.tool.get_weather"


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'agents.db'}", poll_interval=0.05)


def weather_model(calls: list[int]) -> FunctionModel:
    """Asks for the weather in Paris, then answers with what the tool said."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        returns = [
            p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)
        ]
        if not returns:
            return ModelResponse(
                parts=[ToolCallPart("get_weather", {"city": "Paris"}, tool_call_id="c1")],
                usage=RequestUsage(input_tokens=11, output_tokens=5),
            )
        return ModelResponse(
            parts=[TextPart(f"It is {returns[-1].content} in Paris.")],
            usage=RequestUsage(input_tokens=20, output_tokens=7),
        )

    return FunctionModel(respond, model_name="weather-fn")


def step_events(events: list[ev.LoggedEvent]) -> list[tuple[str, str]]:
    """(event type, step name) of every step event, names taken from StepStarted."""
    names: dict[int, str] = {}
    out: list[tuple[str, str]] = []
    for e in events:
        event: Any = e.event
        if isinstance(event, ev.StepStarted):
            names[event.pos] = event.name
            out.append(("started", event.name))
        elif isinstance(event, ev.StepCompleted):
            out.append(("completed", names[event.pos]))
        elif isinstance(event, ev.StepFailed):
            out.append(("failed", names[event.pos]))
    return out


def completed_results(events: list[ev.LoggedEvent]) -> dict[str, list[Any]]:
    names: dict[int, str] = {}
    results: dict[str, list[Any]] = {}
    for e in events:
        event: Any = e.event
        if isinstance(event, ev.StepStarted):
            names[event.pos] = event.name
        elif isinstance(event, ev.StepCompleted):
            value = msgspec.msgpack.decode(event.result)
            results.setdefault(names[event.pos], []).append(value)
    return results


def weather_agent(calls: list[int], tool_calls: list[str]) -> Agent[None, str]:
    agent = Agent(weather_model(calls), name="support")

    @agent.tool_plain
    async def get_weather(city: str) -> str:
        tool_calls.append(city)
        return "sunny"

    return agent


async def test_each_model_request_and_tool_call_is_one_step(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[int] = []
    tool_calls: list[str] = []
    support = app.agent(weather_agent(calls, tool_calls))

    @app.workflow()
    async def ask(ctx: Context, question: str) -> str:
        result = await support.run(question)
        return result.output

    async with app:
        assert await app.run(ask, "weather?", run_id="w1") == "It is sunny in Paris."
        events = await app.events("w1")
        report = await replay("w1", events, app.registry)

    assert calls == [1, 3] and tool_calls == ["Paris"]
    assert step_events(events) == [
        ("started", MODEL_STEP),
        ("completed", MODEL_STEP),
        ("started", TOOL_STEP),
        ("completed", TOOL_STEP),
        ("started", MODEL_STEP),
        ("completed", MODEL_STEP),
    ]
    # Replaying the log re-executes the agent loop with every outcome taken from the log:
    # nothing is called again.
    assert report.deterministic, report.divergence
    assert calls == [1, 3] and tool_calls == ["Paris"]


async def test_model_steps_record_the_response_and_its_token_usage(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    support = app.agent(weather_agent([], []))

    @app.workflow()
    async def ask(ctx: Context, question: str) -> str:
        return (await support.run(question)).output

    async with app:
        await app.run(ask, "weather?", run_id="w2")
        events = await app.events("w2")

    results = completed_results(events)
    first, second = results[MODEL_STEP]
    assert first["usage"] == {"requests": 1, "input_tokens": 11, "output_tokens": 5}
    assert second["usage"] == {"requests": 1, "input_tokens": 20, "output_tokens": 7}
    assert first["model_name"] == "weather-fn"
    # The response as Pydantic AI's own type adapter dumps it (JSON-shaped, never pickled).
    call = first["response"]["parts"][0]
    assert call["part_kind"] == "tool-call" and call["tool_name"] == "get_weather"
    assert second["response"]["parts"][0]["content"] == "It is sunny in Paris."
    # A model step's input is the newest request, not the whole history again.
    starts = [e.event for e in events if isinstance(e.event, ev.StepStarted)]
    model_input = msgspec.msgpack.decode(starts[2].input)
    assert model_input[0][0]["messages"] == 3
    assert model_input[0][0]["request"]["parts"][0]["part_kind"] == "tool-return"
    tool_input = msgspec.msgpack.decode(starts[1].input)
    assert tool_input[0][0] == {"tool": "get_weather", "args": {"city": "Paris"}}


async def test_a_recovered_run_resumes_from_the_recorded_steps(tmp_path: Path) -> None:
    """A worker stopped while the tool runs (after the first model response is recorded): the
    next worker resumes the run and does not ask the model again for the recorded response.
    (tests/agents/test_agent_crash.py does it with a SIGKILLed worker process.)"""
    calls: list[int] = []
    tool_calls: list[str] = []
    in_tool = asyncio.Event()

    def build() -> tuple[App, Any]:
        app = make_app(tmp_path)
        agent = Agent(weather_model(calls), name="support")

        @agent.tool_plain
        async def get_weather(city: str) -> str:
            tool_calls.append(city)
            if len(tool_calls) == 1:
                in_tool.set()
                await asyncio.Event().wait()  # until the worker stops: nothing recorded
            return "sunny"

        support = app.agent(agent)

        @app.workflow()
        async def ask(ctx: Context, question: str) -> str:
            return (await support.run(question)).output

        return app, ask

    app, ask = build()
    async with app:
        await app.start(ask, "weather?", run_id="w3")
        await asyncio.wait_for(in_tool.wait(), 30)
    assert calls == [1] and tool_calls == ["Paris"]

    app, ask = build()
    async with app:
        assert await app.handle("w3").result(timeout=30) == "It is sunny in Paris."
        events = await app.events("w3")
    # The first response came from the log; the tool ran again (its first attempt was never
    # recorded), then the model was asked once more.
    assert calls == [1, 3] and tool_calls == ["Paris", "Paris"]
    assert [n for kind, n in step_events(events) if kind == "completed"] == [
        MODEL_STEP,
        TOOL_STEP,
        MODEL_STEP,
    ]


async def test_test_model_calls_every_tool_then_answers(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    seen: list[tuple[str, object]] = []
    agent: Agent[None, str] = Agent(TestModel(), name="helper")

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        seen.append(("add", (a, b)))
        return a + b

    @agent.tool
    async def greet(ctx: RunContext[None], who: str) -> str:
        seen.append(("greet", who))
        return f"hello {who}"

    helper = app.agent(agent)

    @app.workflow()
    async def work(ctx: Context) -> str:
        return (await helper.run("go")).output

    async with app:
        output = await app.run(work, run_id="t1")
        events = await app.events("t1")
        report = await replay("t1", events, app.registry)
    assert "add" in output and "greet" in output
    completed = [n for kind, n in step_events(events) if kind == "completed"]
    assert completed == [
        "helper.model_request",
        "helper.tool.add",
        "helper.tool.greet",
        "helper.model_request",
    ]
    assert sorted(name for name, _ in seen) == ["add", "greet"]
    assert report.deterministic, report.divergence


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


async def test_outside_a_workflow_the_agent_is_a_plain_agent(tmp_path: Path) -> None:
    calls: list[int] = []
    support = DurableAgent(weather_agent(calls, []))
    result = await support.run("weather?")
    assert result.output == "It is sunny in Paris." and calls == [1, 3]


def test_a_durable_agent_needs_a_name() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        DurableAgent(Agent(TestModel()))
    assert DurableAgent(Agent(TestModel()), name="x").name == "x"


async def test_a_failed_model_request_is_retried_per_the_policy(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[int] = []

    def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        if len(calls) == 1:
            raise ModelHTTPError(503, "flaky-model", "overloaded")
        return ModelResponse(parts=[TextPart("ok")])

    support = app.agent(
        Agent(FunctionModel(flaky), name="support"),
        model_retry=RetryPolicy(2, initial_delay=0.01),
    )

    @app.workflow()
    async def ask(ctx: Context) -> str:
        return (await support.run("hi")).output

    async with app:
        assert await app.run(ask, run_id="m1") == "ok"
        events = await app.events("m1")
    assert calls == [1, 1]
    assert step_events(events) == [
        ("started", MODEL_STEP),
        ("failed", MODEL_STEP),
        ("started", MODEL_STEP),
        ("completed", MODEL_STEP),
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


async def test_the_capability_attached_at_construction(tmp_path: Path) -> None:
    """`Agent(..., capabilities=[Durability()])`: the agent itself is durable in a workflow."""
    app = make_app(tmp_path)
    calls: list[int] = []
    agent = Agent(weather_model(calls), name="support", capabilities=[Durability()])

    @agent.tool_plain
    async def get_weather(city: str) -> str:
        return "sunny"

    @app.workflow()
    async def ask(ctx: Context) -> str:
        return (await agent.run("weather?")).output

    async with app:
        assert await app.run(ask, run_id="c1") == "It is sunny in Paris."
        events = await app.events("c1")
        assert (await replay("c1", events, app.registry)).deterministic
    assert calls == [1, 3]
    assert [n for k, n in step_events(events) if k == "completed"] == [
        MODEL_STEP,
        TOOL_STEP,
        MODEL_STEP,
    ]


async def test_an_event_stream_handler_sees_each_event_once(tmp_path: Path) -> None:
    """Given to the durable agent, the handler gets the streamed model events live from inside
    the model-request step, and every other event from a step of its own: replaying the run
    delivers none of them again. The streamed request's step records its usage too."""
    app = make_app(tmp_path)
    seen: list[str] = []

    async def handler(ctx: RunContext[None], stream: AsyncIterable[AgentStreamEvent]) -> None:
        async for event in stream:
            seen.append(type(event).__name__)

    agent: Agent[None, str] = Agent(TestModel(), name="helper")

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        return a + b

    helper = app.agent(agent, event_stream_handler=handler)

    @app.workflow()
    async def work(ctx: Context) -> str:
        return (await helper.run("go")).output

    async with app:
        await app.run(work, run_id="e1")
        events = await app.events("e1")
        live = list(seen)
        assert (await replay("e1", events, app.registry)).deterministic
    assert seen == live
    assert live.count("FunctionToolCallEvent") == 1 and live.count("FunctionToolResultEvent") == 1
    assert "PartStartEvent" in live
    completed = [n for k, n in step_events(events) if k == "completed"]
    assert completed == [
        "helper.model_request_stream",
        "helper.event",
        "helper.tool.add",
        "helper.event",
        "helper.model_request_stream",
    ]
    usage = completed_results(events)["helper.model_request_stream"][0]["usage"]
    assert usage["requests"] == 1 and usage["input_tokens"] > 0


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


async def test_a_tool_call_waiting_for_human_approval(tmp_path: Path) -> None:
    """Pydantic AI's deferred tools with a durable wait: the run ends with the call to approve,
    the workflow waits for a signal (holding no worker meanwhile), then resumes the agent
    with the decision. Nothing before the wait runs again."""
    app = make_app(tmp_path)
    deleted: list[str] = []
    calls: list[int] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        returns = [
            p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)
        ]
        if returns:
            return ModelResponse(parts=[TextPart(f"done: {returns[-1].content}")])
        return ModelResponse(parts=[ToolCallPart("delete", {"path": "/tmp/x"}, "d1")])

    agent: Agent[None, str | DeferredToolRequests] = Agent(
        FunctionModel(respond), name="ops", output_type=[str, DeferredToolRequests]
    )

    @agent.tool_plain(requires_approval=True)
    def delete(path: str) -> str:
        deleted.append(path)
        return f"deleted {path}"

    ops = app.agent(agent)

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        result = await ops.run("clean up")
        while isinstance(result.output, DeferredToolRequests):
            approved: bool = await ctx.wait_for_signal("approval", type=bool)
            decisions = DeferredToolResults(
                approvals={call.tool_call_id: approved for call in result.output.approvals}
            )
            result = await ops.run(
                message_history=result.all_messages(), deferred_tool_results=decisions
            )
        return result.output

    async with app:
        handle = await app.start(cleanup, run_id="h1")
        for _ in range(200):
            if any(e.type == "WaitStarted" for e in await app.events("h1")):
                break
            await asyncio.sleep(0.05)
        assert deleted == [] and calls == [1]
        await app.signal("h1", "approval", True)
        assert await handle.result(timeout=30) == "done: deleted /tmp/x"
        events = await app.events("h1")
        assert (await replay("h1", events, app.registry)).deterministic
    assert deleted == ["/tmp/x"] and calls == [1, 3]
    assert [n for k, n in step_events(events) if k == "completed"] == [
        "ops.model_request",
        "ops.tool.delete",
        "ops.model_request",
    ]


async def test_agent_runs_at_once_in_child_runs(tmp_path: Path) -> None:
    """Concurrent agent runs each get a child run: each child's log is its own, so each
    replays cleanly whatever order the models answered in."""
    app = make_app(tmp_path)

    def model(delay: float) -> FunctionModel:
        async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            if len(messages) == 1:
                await asyncio.sleep(delay)
                return ModelResponse(parts=[ToolCallPart("look", {"x": 1})])
            return ModelResponse(parts=[TextPart("done")])

        return FunctionModel(respond)

    agents: dict[str, DurableAgent[None, str]] = {}
    for name, delay in (("slow", 0.3), ("fast", 0.0)):
        agent: Agent[None, str] = Agent(model(delay), name=name)

        @agent.tool_plain
        def look(x: int) -> int:
            return x

        agents[name] = app.agent(agent)

    @app.workflow()
    async def answer(ctx: Context, which: str) -> str:
        return (await agents[which].run("go")).output

    @app.workflow()
    async def both(ctx: Context) -> list[str]:
        results = await asyncio.gather(*(ctx.run_child(answer, w) for w in ("slow", "fast")))
        return list(results)

    async with app:
        assert await app.run(both, run_id="p") == ["done", "done"]
        for run_id in ("p", "p.0", "p.1"):
            events = await app.events(run_id)
            assert (await replay(run_id, events, app.registry)).deterministic, run_id


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
