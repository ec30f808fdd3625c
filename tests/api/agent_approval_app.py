"""An application for the API and dashboard tests of agent approvals: a durable agent on a
FunctionModel that asks to delete the paths its prompt names (one tool call each, a tool that
needs approval), then answers with what each call returned. A path is told back with markup in
it by the test, which the dashboard must show as text."""

from __future__ import annotations

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from sdk import App, Context

app = App(poll_interval=0.05, park_after=0.1)


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returns = [
        p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)
    ]
    if returns:
        return ModelResponse(parts=[TextPart(" | ".join(str(r.content) for r in returns))])
    prompt = str(messages[-1].parts[-1].content)  # type: ignore[union-attr]
    paths = [p for p in prompt.split() if p.startswith("/")]
    calls = [
        ToolCallPart("delete", {"path": p}, tool_call_id=f"d{i}") for i, p in enumerate(paths, 1)
    ]
    return ModelResponse(parts=[TextPart("I will delete those."), *calls])


agent = Agent(FunctionModel(respond, model_name="ops-fn"), name="ops")


@agent.tool_plain(requires_approval=True)
def delete(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


ops = app.agent(agent)


@app.workflow()
async def cleanup(ctx: Context, request: str) -> str:
    return (await ops.run(request)).output
