"""A worker process for test_agent_crash: a durable agent that checks the weather, books a
table (a side effect), then answers. It SIGKILLs itself at the start of model request number
KILL_AT (1-based, counted over the whole run's life) if the file KILL_MARKER exists, removing
the marker first: one worker dies between two model responses, the next one finishes the run.

argv: DB_URL DIR RUN_ID. Every model response and every tool execution appends a line to
DIR/model_calls or DIR/tool_calls, so the test can count what really ran.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from durable import RunNotFoundError
from sdk import App, Context


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def build(url: str, workdir: Path) -> App:
    app = App(url, lease_ttl=0.5, poll_interval=0.05)
    model_calls, tool_calls = workdir / "model_calls", workdir / "tool_calls"
    marker, kill_at = workdir / "KILL_MARKER", int((workdir / "KILL_AT").read_text())

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        number = len(messages) // 2 + 1  # 1 request, then 2 more per round trip
        if number == kill_at and marker.exists():
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
        _append(model_calls, f"{number} {os.getpid()}")
        usage = RequestUsage(input_tokens=10 * number, output_tokens=number)
        if number == 1:
            call = ToolCallPart("get_weather", {"city": "Paris"}, tool_call_id="w")
            return ModelResponse(parts=[call], usage=usage)
        if number == 2:
            call = ToolCallPart("book_table", {"city": "Paris", "people": 2}, tool_call_id="b")
            return ModelResponse(parts=[call], usage=usage)
        return ModelResponse(parts=[TextPart("Sunny; table booked.")], usage=usage)

    agent = Agent(FunctionModel(respond, model_name="fn"), name="concierge")

    @agent.tool_plain
    async def get_weather(city: str) -> str:
        _append(tool_calls, f"get_weather {os.getpid()}")
        return "sunny"

    @agent.tool_plain
    async def book_table(city: str, people: int) -> str:
        _append(tool_calls, f"book_table {os.getpid()}")
        return f"booked for {people}"

    concierge = app.agent(agent)

    @app.workflow()
    async def plan_evening(ctx: Context, request: str) -> str:
        result = await concierge.run(request)
        return result.output

    return app


async def main() -> None:
    url, workdir, run_id = sys.argv[1:]
    app = build(url, Path(workdir))
    async with app:
        try:
            await app.get_run(run_id)
            handle = app.handle(run_id)
        except RunNotFoundError:
            handle = await app.start("plan_evening", "dinner in Paris?", run_id=run_id)
        print(await handle.result(timeout=60), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
