"""What the durable-agent tests share: an app, a weather agent on a FunctionModel, and readers
of a run's step events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from durable import events as ev
from sdk import App

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
