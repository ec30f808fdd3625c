"""What a run reports: WorkflowResult (status, steps, counts, times, error), the stream of
StepResults as steps finish, and the WorkflowLogger's hooks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from flow_helpers import make_app, run

from sdk.workflows import (
    ConditionalStep,
    ParallelStep,
    StepResult,
    ToolStep,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
    WorkflowLogger,
    execute_workflow_stream,
)


def sleeper(seconds: float, output: Any = None) -> Any:
    async def tool() -> Any:
        await asyncio.sleep(seconds)
        return output

    return tool


def broken() -> None:
    raise ValueError("disk full")


async def test_a_completed_workflows_result(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("report")
        .add_tool_step("a", sleeper(0.05, {"x": 1}))
        .add_step(ToolStep("skipped", broken).add_condition(lambda s: False))
        .add_step(
            ParallelStep("p", [ToolStep("b", sleeper(0.05, 2)), ToolStep("c", sleeper(0.1, 3))])
        )
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "completed" and result.is_success and result.error is None
    assert [(s.step_id, s.status) for s in result.steps] == [
        ("a", "success"),
        ("skipped", "skipped"),
        ("p", "success"),
    ]
    assert [s.step_id for s in result.all_steps] == ["a", "skipped", "b", "c", "p"]
    assert result.total_steps == 3 and result.steps_completed == 2
    assert result.success_rate == 100.0
    assert result.outputs == {"a": {"x": 1}, "b": 2, "c": 3, "p": {"b": 2, "c": 3}}
    # Times: each step's from the log; the run's covers them all.
    a, _, p = result.steps
    assert a.execution_time_ms >= 50 and p.execution_time_ms >= 100
    assert a.started_at is not None and a.finished_at is not None
    assert p.started_at is not None and p.finished_at is not None
    assert a.finished_at <= p.started_at
    assert result.execution_time_ms >= a.execution_time_ms + p.execution_time_ms
    assert result.execution_time_ms < 5000
    assert result.total_execution_time_ms == result.execution_time_ms
    assert result.steps[1].execution_time_ms == 0.0


async def test_a_failed_workflows_result_and_run(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("failing")
        .add_tool_step("ok", lambda: "fine")
        .add_tool_step("broken", broken)
        .add_tool_step("never", lambda: calls.append("never"))
        .build()
    )
    app = make_app(tmp_path)
    result = await run(tmp_path, workflow, engine=WorkflowEngine(app))
    assert calls == []
    assert result.status == "failed" and not result.is_success
    assert result.error == "step 'broken' failed: ValueError: disk full"
    assert [s.status for s in result.steps] == ["success", "failed"]
    assert (result.steps_completed, result.total_steps) == (1, 3)
    assert result.success_rate == 50.0
    assert result.execution_time_ms > 0
    assert result.steps[1].error == "ValueError: disk full"
    assert result.context.variables == {"ok": "fine"}
    async with app:
        info = await app.get_run("r1")
    assert info.status == "failed"
    assert "step 'broken' failed: ValueError: disk full" in str(info.error)


async def test_the_stream_yields_results_as_steps_finish(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("streamed")
        .add_tool_step("first", sleeper(0.0, 1))
        .add_step(
            ParallelStep("p")
            .add_branch(ToolStep("slow", sleeper(0.4, "s")))
            .add_branch(ToolStep("fast", sleeper(0.05, "f")))
        )
        .add_step(ConditionalStep("c", lambda s: True, ToolStep("inner", broken)))
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    loop = asyncio.get_running_loop()
    seen: list[tuple[str, str, str | None, float]] = []
    async for result in engine.stream(workflow, WorkflowContext(workflow_id="r1")):
        assert isinstance(result, StepResult)
        seen.append((result.step_id, result.status, result.parent_id, loop.time()))
    assert [(s, st, p) for s, st, p, _ in seen] == [
        ("first", "success", None),
        ("fast", "success", "p"),  # completion order, not declaration order
        ("slow", "success", "p"),
        ("p", "success", None),
        ("inner", "failed", "c"),
        ("c", "failed", None),
    ]
    # Each arrived as it finished, not all at the end: "fast" came well before "slow".
    assert seen[2][3] - seen[1][3] >= 0.1
    assert not engine.app.is_open  # the stream ended with the run and closed what it opened
    final = await engine.result(workflow, "r1")
    assert final.status == "failed"


async def test_execute_workflow_stream_and_a_replayed_stream(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("doc_stream")
        .add_tool_step("a", lambda: 1)
        .add_tool_step("b", lambda: 2)
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    context = WorkflowContext(workflow_id="r1")
    began = time.time()
    live = [r async for r in execute_workflow_stream(workflow, context, engine)]
    ended = time.time()
    assert [(r.step_id, r.output, r.is_success) for r in live] == [("a", 1, True), ("b", 2, True)]
    assert all(r.error is None for r in live)
    for r in live:
        # The span the log recorded, inside the stream's own, in milliseconds.
        assert r.started_at is not None and r.finished_at is not None
        assert began <= r.started_at <= r.finished_at <= ended
        assert r.execution_time_ms == round((r.finished_at - r.started_at) * 1000, 3)
    # Streaming a finished run again reads the same results from its log.
    again = [r async for r in execute_workflow_stream(workflow, context, engine)]
    assert again == live


async def test_the_logger_hears_each_step_once(tmp_path: Path) -> None:
    heard: list[tuple[Any, ...]] = []

    class Logger(WorkflowLogger):
        def log_step_start(self, step_name: str, state: Any) -> None:
            heard.append(("start", step_name, sorted(state.data)))

        def log_step_complete(self, step_name: str, result: Any, duration_ms: float) -> None:
            assert duration_ms == result.execution_time_ms
            heard.append(("complete", step_name, result.success))

        def log_step_error(self, step_name: str, error: str, state: Any) -> None:
            heard.append(("error", step_name, error))

    workflow = (
        WorkflowBuilder("logged")
        .add_tool_step("a", lambda: {"x": 1})
        .add_step(ToolStep("skip", lambda: 0).add_condition(lambda s: False))
        .add_step(ConditionalStep("c", lambda s: True, ToolStep("inner", broken)))
        .with_logger(Logger())
        .build()
    )
    first = await run(tmp_path, workflow)
    assert heard == [
        ("start", "a", []),
        ("complete", "a", True),
        ("complete", "skip", False),  # a skipped step completes (it did not fail)
        ("start", "c", ["x"]),
        ("start", "inner", ["x"]),
        ("error", "inner", "ValueError: disk full"),
        ("error", "c", "ValueError: disk full"),
    ]
    # Executing the finished run again reads its log: the logger hears nothing more.
    again = await run(tmp_path, workflow)
    assert again == first and len(heard) == 7
