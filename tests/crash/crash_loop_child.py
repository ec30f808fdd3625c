"""A worker process for test_crash_loop: its `boom` step SIGKILLs the process it runs in.

argv: DB_URL MAX_CRASHES ("app-default" for the App default) RUN_IDS... Starts a run for each
id not yet in the database, by its prefix: `bomb-*` (a Python step that kills the process),
`dag-*` (a DAG `function:` step that does), `flow-*` (a builder workflow's tool step that
does), `agent-*` (a durable agent's tool that does), `calm-*`; then works until all of them
ended, and prints `status run_id=...` lines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from durable import RunNotFoundError
from durable.dag import parse_definition
from sdk import App, Context, RunFailed
from sdk.workflows import WorkflowBuilder, WorkflowContext

CRASH_DAG = """
name: crashdag
tasks:
  first: {code: "return 1;"}
  boom: {function: "crash:boom", depends_on: [first]}
"""


def kill_self() -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


CRASH_FLOW = WorkflowBuilder("crashflow").add_tool_step("boom", kill_self, {}).build()


def add_agent(app: App) -> None:
    """Only for `agent-*` runs: importing Pydantic AI costs seconds per worker process."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:  # the prompt alone: call the tool (whose answer never comes)
            return ModelResponse(parts=[ToolCallPart("boom", {}, tool_call_id="b")])
        return ModelResponse(parts=[TextPart("unreachable")])

    agent = Agent(FunctionModel(respond, model_name="fn"), name="bomber")
    agent.tool_plain(name="boom")(kill_self)
    bomber = app.agent(agent)

    @app.workflow()
    async def agentbomb(ctx: Context) -> str:
        return (await bomber.run("go")).output


def build(url: str, max_crashes: str) -> App:
    app = (
        App(url, lease_ttl=0.5, poll_interval=0.05)
        if max_crashes == "app-default"
        else App(url, lease_ttl=0.5, poll_interval=0.05, max_step_crashes=int(max_crashes))
    )

    @app.step()
    async def boom() -> str:
        os.kill(os.getpid(), signal.SIGKILL)
        return "unreachable"

    @app.step()
    async def add(a: int, b: int) -> int:
        return a + b

    @app.workflow()
    async def bomb(ctx: Context) -> str:
        await add(1, 2)
        return await boom()

    @app.workflow()
    async def calm(ctx: Context, n: int) -> int:
        return await add(n, 1)

    app.register_function(kill_self, name="crash:boom")
    app.register_dag(parse_definition(CRASH_DAG, "crashdag.yaml"))
    app.register_workflow(CRASH_FLOW)
    return app


async def main() -> None:
    url, max_crashes, *run_ids = sys.argv[1:]
    app = build(url, max_crashes)
    if any(run_id.startswith("agent-") for run_id in run_ids):
        add_agent(app)
    async with app:
        handles = []
        for run_id in run_ids:
            kind, _, _ = run_id.partition("-")
            if await _exists(app, run_id):
                handles.append(app.handle(run_id))
            elif kind == "bomb":
                handles.append(await app.start("bomb", run_id=run_id))
            elif kind == "dag":
                handles.append(await app.start("crashdag", run_id=run_id))
            elif kind == "flow":
                payload = WorkflowContext(workflow_id=run_id).to_payload()
                handles.append(await app.start("crashflow", payload, run_id=run_id))
            elif kind == "agent":
                handles.append(await app.start("agentbomb", run_id=run_id))
            else:
                handles.append(await app.start("calm", 41, run_id=run_id))
        for handle in handles:
            try:
                value = await handle.result(timeout=60)
                print(f"succeeded {handle.run_id}={value!r}", flush=True)
            except RunFailed as exc:
                print(f"failed {handle.run_id}={exc}", flush=True)


async def _exists(app: App, run_id: str) -> bool:
    try:
        await app.get_run(run_id)
    except RunNotFoundError:
        return False
    return True


if __name__ == "__main__":
    asyncio.run(main())
