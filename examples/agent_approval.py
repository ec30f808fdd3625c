"""A durable agent whose tool needs a human's approval, behind the README's commands.

    python examples/agent_approval.py           # start cleanup-1; return once it waits
    durable approvals cleanup-1                 # the tool calls waiting for a decision
    durable approve cleanup-1 delete-1          # or: durable deny cleanup-1 delete-2 --reason ...
    durable worker examples.agent_approval:app  # the agent goes on with the decisions

It runs offline: Pydantic AI's FunctionModel stands in for the language model (it asks to
delete two old files, then sums up what it was told). With a real model, write
`Agent("openai:gpt-4o", ...)` instead. The database is ./durable.db, or $DURABLE_DATABASE_URL.
"""

from __future__ import annotations

import asyncio

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from sdk import App, Context

app = App()


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    told = [p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)]
    if told:
        return ModelResponse(parts=[TextPart("; ".join(str(p.content) for p in told))])
    return ModelResponse(
        parts=[
            ToolCallPart("delete", {"path": "/srv/logs/2019"}, tool_call_id="delete-1"),
            ToolCallPart("delete", {"path": "/srv/db/backup"}, tool_call_id="delete-2"),
        ]
    )


agent = Agent(FunctionModel(model), name="janitor", instructions="Free some disk space.")


@agent.tool_plain(requires_approval=True)
def delete(path: str) -> str:
    """Delete a file or directory."""
    return f"deleted {path}"


janitor = app.agent(agent)  # approvals are on: delete() waits for app.approve()/app.deny()


@app.workflow()
async def cleanup(ctx: Context, request: str) -> str:
    result = await janitor.run(request)
    return result.output


async def main() -> None:
    async with app:
        await app.start(cleanup, "the disk is full", run_id="cleanup-1")
        for _ in range(600):  # until the agent has asked: a moment
            if [a for a in await app.approvals("cleanup-1") if not a.decided]:
                break
            await asyncio.sleep(0.05)
        for approval in await app.approvals("cleanup-1"):
            print(
                f"{approval.tool_call_id}: {approval.tool_name}({approval.args}) waits for approval"
            )


if __name__ == "__main__":
    asyncio.run(main())
