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
from agent_helpers import (
    MODEL_STEP,
    TOOL_STEP,
    completed_results,
    make_app,
    step_events,
    weather_agent,
    weather_model,
)
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, RunContext
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

from durable import events as ev
from durable import replay
from durable.agents import Durability, DurableAgent
from sdk import (
    App,
    Context,
    RetryPolicy,
)


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
