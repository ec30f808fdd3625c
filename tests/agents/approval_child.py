"""A worker process for test_approval_crash: a durable agent whose model asks to delete a file,
a tool that needs approval. Every model response and every tool execution appends a line
("<n> <pid>", "delete <pid>") to DIR/model_calls or DIR/tool_calls, so the test can count what
really ran. The test SIGKILLs this process while the run waits for the decision.

argv: DB_URL DIR RUN_ID PARK_AFTER. Prints the run's result once it ends.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable import RunNotFoundError
from sdk import App, Context


def _append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def build(url: str, workdir: Path, park_after: float = 0.1) -> App:
    app = App(url, lease_ttl=0.5, poll_interval=0.05, park_after=park_after)

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        number = len(messages) // 2 + 1
        _append(workdir / "model_calls", f"{number} {os.getpid()}")
        returns = [
            p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)
        ]
        if returns:
            return ModelResponse(parts=[TextPart(f"done: {returns[-1].content}")])
        return ModelResponse(parts=[ToolCallPart("delete", {"path": "/srv/old"}, "del-1")])

    agent = Agent(FunctionModel(respond, model_name="fn"), name="ops")

    @agent.tool_plain(requires_approval=True)
    async def delete(path: str) -> str:
        _append(workdir / "tool_calls", f"delete {os.getpid()}")
        return f"deleted {path}"

    ops = app.agent(agent)

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        return (await ops.run("clean up")).output

    return app


async def main() -> None:
    url, workdir, run_id, park_after = sys.argv[1:]
    app = build(url, Path(workdir), float(park_after))
    async with app:
        try:
            await app.get_run(run_id)
            handle = app.handle(run_id)
        except RunNotFoundError:
            handle = await app.start("cleanup", run_id=run_id)
        print(await handle.result(timeout=60), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
