"""WorkflowEngine and the ways into a run: execute_workflow on an app open or not,
Workflow.execute() with its default engine, App.register_workflow + app.start by name, a
run's result while it is still running, retries and timeouts of composite steps."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import by_id, make_app, run
from pydantic_ai import Tool

from durable import replay
from sdk import App
from sdk.workflows import (
    ConditionalStep,
    LoopStep,
    ToolStep,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
)


def simple(name: str = "simple") -> Workflow:
    return WorkflowBuilder(name).add_tool_step("a", lambda: 1).build()


async def test_an_open_app_is_used_as_it_is_and_a_closed_one_is_closed_again(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    engine = WorkflowEngine(app)
    result = await engine.execute_workflow(simple(), WorkflowContext(workflow_id="r1"))
    assert result.status == "completed" and not app.is_open
    async with app:
        result = await engine.execute_workflow(simple(), WorkflowContext(workflow_id="r2"))
        assert result.status == "completed" and app.is_open
        assert {r.run_id for r in await app.list_runs()} == {"r1", "r2"}


async def test_workflow_execute_uses_the_default_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLE_DATABASE_URL", f"sqlite:///{tmp_path / 'default.db'}")
    result = await simple("by_default").execute(WorkflowContext(workflow_id="r1"))
    assert result.status == "completed", result.error
    assert (tmp_path / "default.db").exists()
    other = await simple("by_engine").execute(
        WorkflowContext(workflow_id="r2"), WorkflowEngine(make_app(tmp_path))
    )
    assert other.status == "completed"
    async with make_app(tmp_path) as app:
        assert [r.run_id for r in await app.list_runs()] == ["r2"]


async def test_a_registered_workflow_runs_by_name(tmp_path: Path) -> None:
    calls: list[int] = []

    def add(x: int, y: int) -> int:
        calls.append(1)
        return x + y

    app = App(f"sqlite:///{tmp_path / 'x.db'}", poll_interval=0.05)
    workflow = (
        WorkflowBuilder("by_name")
        .add_step(ToolStep("sum", "adder").with_params_function(lambda s: {"x": s["x"], "y": 2}))
        .build()
    )
    app.register_workflow(workflow, tools=[Tool(add, name="adder")])
    async with app:
        output = await app.run("by_name", {"initial_data": {"x": 40}}, run_id="r1")
    assert output["status"] == "completed" and output["variables"] == {"sum": 42}
    assert output["steps"][0]["step_id"] == "sum" and calls == [1]


async def test_the_result_of_a_run_still_running(tmp_path: Path) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def wait_for_release() -> str:
        entered.set()
        await release.wait()
        return "released"

    workflow = (
        WorkflowBuilder("slow_run")
        .add_tool_step("first", lambda: "done")
        .add_tool_step("gate", wait_for_release)
        .build()
    )
    app = make_app(tmp_path)
    engine = WorkflowEngine(app)
    async with app:
        handle = await engine.start(workflow, WorkflowContext(workflow_id="r1"))
        await asyncio.wait_for(entered.wait(), 10)  # "first" is recorded by then
        running = await engine.result(workflow, "r1")
        assert running.status == "running" and running.error is None
        assert [s.step_id for s in running.steps] == ["first"]
        release.set()
        await handle.result(10)
        done = await engine.result(workflow, "r1")
    assert done.status == "completed" and [s.output for s in done.steps] == ["done", "released"]


async def test_a_composite_step_with_retry_runs_again(tmp_path: Path) -> None:
    calls: list[str] = []

    def inner() -> str:
        calls.append("inner")
        if len(calls) == 1:
            raise ConnectionError("first try fails")
        return "ok"

    step = ConditionalStep("check", lambda s: True, ToolStep("inner", inner)).with_retry(
        1, delay=0.01
    )
    result = await run(tmp_path, WorkflowBuilder("composite_retry").add_step(step).build())
    assert result.status == "completed", result.error
    assert calls == ["inner", "inner"]
    assert [(s.step_id, s.status) for s in result.all_steps] == [
        ("inner", "failed"),
        ("inner", "success"),
        ("check", "success"),
    ]


async def test_a_loop_with_timeout_stops_in_time(tmp_path: Path) -> None:
    calls: list[int] = []

    async def tick(iteration: int) -> int:
        calls.append(iteration)
        await asyncio.sleep(0.15)
        return iteration

    loop = LoopStep("ticks", ToolStep("tick", tick), max_iterations=50).with_timeout(0.4)
    began = asyncio.get_running_loop().time()
    result = await run(tmp_path, WorkflowBuilder("loop_timeout").add_step(loop).build())
    assert asyncio.get_running_loop().time() - began < 3
    assert result.status == "failed"
    assert result.steps[0].error == "timed out after 0.4s"
    ran = len(calls)
    assert 1 <= ran <= 4
    await asyncio.sleep(0.4)
    assert len(calls) == ran  # the loop was stopped, not left running
    assert all(s.parent_id == "ticks" for s in result.all_steps if s.step_id == "tick")


async def test_a_nested_steps_own_handler_applies(tmp_path: Path) -> None:
    def broken() -> None:
        raise RuntimeError("nested failure")

    workflow = (
        WorkflowBuilder("nested_handler")
        .add_step(LoopStep("loop", ToolStep("body", broken), max_iterations=2))
        .add_error_handler("body", lambda r, c: ToolStep("fallback", lambda: "fb"))
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "completed", result.error
    assert result.steps[0].output == ["fb", "fb"]
    body: Any = by_id(result)["body"]
    assert body.handling["action"] == "replaced" and body.parent_id == "loop"


async def test_a_cancelled_run_ends_its_stream_and_reports_cancelled(tmp_path: Path) -> None:
    entered = asyncio.Event()
    finished: list[str] = []

    async def gate() -> None:
        entered.set()
        await asyncio.sleep(30)
        finished.append("gate")

    workflow = (
        WorkflowBuilder("cancelled")
        .add_tool_step("a", lambda: 1)
        .add_tool_step("gate", gate)
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for result in engine.stream(workflow, WorkflowContext(workflow_id="r1")):
            seen.append((result.step_id, result.status))

    async with engine.app:
        task = asyncio.create_task(consume())
        await asyncio.wait_for(entered.wait(), 10)
        await engine.app.cancel("r1", "operator said so")
        await asyncio.wait_for(task, 10)  # the stream ends with the run
        result = await engine.result(workflow, "r1")
    assert seen == [("a", "success")]
    assert result.status == "cancelled" and result.error == "operator said so"
    assert finished == []


BROKEN = {"on": True}


async def test_durable_retry_of_a_failed_builder_run_tries_the_failed_step_again(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    def flaky() -> str:
        calls.append("flaky")
        if BROKEN["on"]:
            raise RuntimeError("broken until deployed")
        return "fixed"

    BROKEN["on"] = True
    workflow = (
        WorkflowBuilder("retried")
        .add_tool_step("a", lambda: 1)
        .add_tool_step("flaky", flaky)
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    first = await engine.execute_workflow(workflow, WorkflowContext(workflow_id="r1"))
    assert first.status == "failed"
    BROKEN["on"] = False  # the fix is deployed
    async with engine.app:
        handle = await engine.app.retry("r1")
        with contextlib.suppress(Exception):
            await handle.result(10)
        result = await engine.result(workflow, "r1")
        report = await replay("r1", await engine.app.events("r1"), engine.app.registry)
    assert report.deterministic, report.divergence
    assert calls == ["flaky", "flaky"]
    assert result.status == "completed", result.error
    assert [(s.step_id, s.status) for s in result.steps] == [("a", "success"), ("flaky", "success")]
