"""Built-in human approval of agent tool calls: a tool declared `requires_approval=True` (or
raising ApprovalRequired) makes the durable agent record the request, wait for a decision
(parked: no worker holds the run) and resume the same agent run with it. Decisions are sent
once each: deciding twice or deciding an unknown call is refused, with no second effect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from agent_helpers import step_events
from pydantic_ai import Agent, DeferredToolRequests, RunContext
from pydantic_ai.exceptions import ApprovalRequired
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from durable import Approval, ApprovalError, RunNotFoundError, replay
from durable import events as ev
from sdk import App, Context


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'approvals.db'}", poll_interval=0.05, park_after=0.1)


def returns_of(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)]


def ops_agent(
    calls: list[int], deleted: list[str], *, paths: tuple[str, ...] = ("/tmp/x",), **opts: Any
) -> Agent[None, str]:
    """Asks to delete each of `paths` (one response), then answers with what the tools said."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(len(messages))
        returns = returns_of(messages)
        if returns:
            return ModelResponse(parts=[TextPart(" | ".join(str(r.content) for r in returns))])
        return ModelResponse(
            parts=[
                ToolCallPart("delete", {"path": p}, tool_call_id=f"d{i}")
                for i, p in enumerate(paths, 1)
            ]
        )

    agent = Agent(FunctionModel(respond), name="ops", **opts)

    @agent.tool_plain(requires_approval=True)
    def delete(path: str) -> str:
        deleted.append(path)
        return f"deleted {path}"

    return agent


async def pending(app: App, run_id: str, count: int = 1) -> list[Approval]:
    for _ in range(400):
        found = [a for a in await app.approvals(run_id) if a.status == "pending"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.025)
    raise AssertionError(f"no {count} pending approvals in run {run_id}")


async def test_an_approved_tool_call_runs_once_after_a_parked_wait(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[int] = []
    deleted: list[str] = []
    ops = app.agent(ops_agent(calls, deleted))

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        return (await ops.run("clean up")).output

    async with app:
        handle = await app.start(cleanup, run_id="a1")
        [request] = await pending(app, "a1")
        assert (request.tool_call_id, request.tool_name, request.args) == (
            "d1",
            "delete",
            {"path": "/tmp/x"},
        )
        assert request.agent == "ops" and not request.decided and request.reason is None
        # Parked while it waits: no executor holds it, and nothing wakes it but a decision.
        await asyncio.sleep(0.4)
        worker = app.engine.worker
        assert worker is not None and "a1" not in worker.executors
        row = await app.engine.store.get_run("a1")
        assert row is not None and row.owner is None and row.status == "running"
        assert deleted == [] and calls == [1]

        decided = await app.approve("a1", "d1", reason="looks safe")
        assert decided.status == "approved" and decided.reason == "looks safe"
        assert await handle.result(timeout=30) == "deleted /tmp/x"
        [after] = await app.approvals("a1")
        assert after.status == "approved" and after.decided and after.decided_at is not None
        events = await app.events("a1")
        assert (await replay("a1", events, app.registry)).deterministic
    assert deleted == ["/tmp/x"] and calls == [1, 3]
    assert [n for k, n in step_events(events) if k == "completed"] == [
        "ops.model_request",
        "ops.approval_request",
        "ops.tool.delete",
        "ops.model_request",
    ]
    # The request is in the log, with the call's name, arguments and id.
    started = [e.event for e in events if isinstance(e.event, ev.StepStarted)]
    position = next(s.pos for s in started if s.name == "ops.approval_request")
    done = next(
        e.event for e in events if isinstance(e.event, ev.StepCompleted) and e.event.pos == position
    )
    recorded = msgspec.msgpack.decode(done.result)
    assert recorded["requests"] == [
        {"tool_call_id": "d1", "tool_name": "delete", "args": {"path": "/tmp/x"}}
    ]


async def test_a_denied_call_tells_the_model_why(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[int] = []
    deleted: list[str] = []
    ops = app.agent(ops_agent(calls, deleted, paths=("/tmp/a", "/etc")))

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        return (await ops.run("clean up")).output

    async with app:
        handle = await app.start(cleanup, run_id="a2")
        found = await pending(app, "a2", 2)
        assert [a.tool_call_id for a in found] == ["d1", "d2"]
        # Decided out of order: the second first.
        await app.deny("a2", "d2", reason="never touch /etc")
        await app.approve("a2", "d1")
        output = await handle.result(timeout=30)
        approvals = {a.tool_call_id: a for a in await app.approvals("a2")}
    assert output == "deleted /tmp/a | never touch /etc"
    assert deleted == ["/tmp/a"]
    assert approvals["d2"].status == "denied" and approvals["d2"].reason == "never touch /etc"
    assert approvals["d1"].status == "approved"


async def test_deciding_twice_or_an_unknown_call_is_refused_with_no_second_effect(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    calls: list[int] = []
    deleted: list[str] = []
    ops = app.agent(ops_agent(calls, deleted))

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        return (await ops.run("clean up")).output

    async with app:
        handle = await app.start(cleanup, run_id="a3")
        await pending(app, "a3")
        with pytest.raises(ApprovalError, match=r"no approval request for tool call 'nope'.*d1"):
            await app.approve("a3", "nope")
        with pytest.raises(RunNotFoundError):
            await app.approve("missing", "d1")
        # Two decisions at once: exactly one of them is taken.
        outcomes = await asyncio.gather(
            app.approve("a3", "d1"), app.deny("a3", "d1", reason="no"), return_exceptions=True
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["Approval", "ApprovalError"]
        winner = next(o for o in outcomes if isinstance(o, Approval))
        with pytest.raises(ApprovalError, match=rf"already {winner.status}"):
            await app.approve("a3", "d1")
        output = await handle.result(timeout=30)
        with pytest.raises(ApprovalError, match="already"):
            await app.deny("a3", "d1", reason="too late")
        events = await app.events("a3")
    assert output == ("deleted /tmp/x" if winner.status == "approved" else "no")
    assert deleted == (["/tmp/x"] if winner.status == "approved" else [])
    # The run's wait took the winning decision, the first received. (The loser, sent in the
    # instant the winner was being taken, may be recorded after it: no wait ever takes it.)
    received = [(e.seq, e.event) for e in events if isinstance(e.event, ev.SignalReceived)]
    taken = [e.event for e in events if isinstance(e.event, ev.WaitCompleted)]
    assert [t.signal_seq for t in taken] == [received[0][0]]
    first = msgspec.msgpack.decode(received[0][1].payload)
    assert first["approved"] is (winner.status == "approved")


async def test_a_tool_raising_approval_required(tmp_path: Path) -> None:
    """ApprovalRequired raised by the tool itself: once approved, the tool runs again with
    ctx.tool_call_approved set."""
    app = make_app(tmp_path)
    seen: list[bool] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = returns_of(messages)
        if returns:
            return ModelResponse(parts=[TextPart(str(returns[-1].content))])
        return ModelResponse(parts=[ToolCallPart("pay", {"cents": 5000}, tool_call_id="p1")])

    agent: Agent[None, str] = Agent(FunctionModel(respond), name="billing")

    @agent.tool
    def pay(ctx: RunContext[None], cents: int) -> str:
        seen.append(ctx.tool_call_approved)
        if cents > 1000 and not ctx.tool_call_approved:
            raise ApprovalRequired()
        return f"paid {cents}"

    billing = app.agent(agent)

    @app.workflow()
    async def checkout(ctx: Context) -> str:
        return (await billing.run("pay")).output

    async with app:
        handle = await app.start(checkout, run_id="a4")
        [request] = await pending(app, "a4")
        assert (request.tool_name, request.args) == ("pay", {"cents": 5000})
        await app.approve("a4", "p1")
        assert await handle.result(timeout=30) == "paid 5000"
        events = await app.events("a4")
        assert (await replay("a4", events, app.registry)).deterministic
    assert seen == [False, True]


async def test_approvals_false_leaves_deferred_calls_to_pydantic_ai(tmp_path: Path) -> None:
    """With approvals=False the agent behaves as Pydantic AI does: the run ends with the
    DeferredToolRequests (its output type allows them) and nothing waits."""
    app = make_app(tmp_path)
    agent = ops_agent([], [], output_type=[str, DeferredToolRequests])
    ops = app.agent(agent, approvals=False)

    @app.workflow()
    async def cleanup(ctx: Context) -> list[str]:
        output = (await ops.run("clean up")).output
        assert isinstance(output, DeferredToolRequests)
        return [c.tool_call_id for c in output.approvals]

    async with app:
        assert await app.run(cleanup, run_id="a5", timeout=30) == ["d1"]
        assert await app.approvals("a5") == []


async def test_approvals_of_a_run_with_none(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def plain(ctx: Context) -> int:
        return 1

    async with app:
        await app.run(plain, run_id="p")
        assert await app.approvals("p") == []
        with pytest.raises(RunNotFoundError):
            await app.approvals("missing")


async def test_a_decision_sent_by_hand_as_a_signal(tmp_path: Path) -> None:
    """The decision is a plain signal: `true`/`false` decide, anything else denies, saying
    why (never running a tool nobody approved)."""
    app = make_app(tmp_path)
    deleted: list[str] = []
    ops = app.agent(ops_agent([], deleted, paths=("/a", "/b")))

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        return (await ops.run("clean up")).output

    async with app:
        handle = await app.start(cleanup, run_id="s1")
        first, second = await pending(app, "s1", 2)
        assert first.signal != second.signal
        await app.signal("s1", first.signal, True)
        await app.signal("s1", second.signal, "maybe")
        output = await handle.result(timeout=30)
        decided = await app.approvals("s1")
    assert deleted == ["/a"]
    assert output.startswith("deleted /a | the decision 'maybe' is not true/false")
    assert [a.status for a in decided] == ["approved", "denied"]


async def test_a_run_given_deferred_output_handles_approvals_itself(tmp_path: Path) -> None:
    """run(output_type=[str, DeferredToolRequests]) asks for the manual pattern for that run:
    the calls come back as its output, nothing waits."""
    app = make_app(tmp_path)
    ops = app.agent(ops_agent([], []))

    @app.workflow()
    async def cleanup(ctx: Context) -> list[str]:
        result = await ops.run("clean up", output_type=[str, DeferredToolRequests])
        assert isinstance(result.output, DeferredToolRequests)
        return [c.tool_call_id for c in result.output.approvals]

    async with app:
        assert await app.run(cleanup, run_id="m1", timeout=30) == ["d1"]
        assert await app.approvals("m1") == []
