"""A builder workflow's run is durable: executing it again returns what the log holds, a run
resumed by another process takes the decisions its lambdas recorded, and the fingerprint
versions the workflow's code."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import make_app, markers, step_names
from pydantic_ai import Tool

from durable import WorkflowDefinitionError
from durable import events as ev
from sdk.workflows import (
    ConditionalStep,
    ToolStep,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
    WorkflowLogger,
    WorkflowStep,
)

# What the condition lambda reads: the world outside the run, which changes across restarts.
WORLD = {"high_value": True}


class Recorder(WorkflowLogger):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def log_step_start(self, step_name: str, state: Any) -> None:
        self.calls.append(("start", step_name))

    def log_step_complete(self, step_name: str, result: Any, duration_ms: float) -> None:
        self.calls.append(("complete", step_name))

    def log_step_error(self, step_name: str, error: str, state: Any) -> None:
        self.calls.append(("error", step_name))


async def test_executing_the_same_run_again_returns_the_recorded_result(tmp_path: Path) -> None:
    calls: list[str] = []

    def charge(amount: int) -> dict[str, Any]:
        calls.append("charge")
        return {"charged": amount}

    def workflow() -> Workflow:
        return (
            WorkflowBuilder("charging")
            .add_step(
                ToolStep("charge", charge).with_params_function(lambda s: {"amount": s["amount"]})
            )
            .add_step(
                ConditionalStep(
                    "big",
                    lambda s: s["charged"] > 10,
                    ToolStep("notify", lambda: calls.append("notify")),
                )
            )
            .build()
        )

    context = WorkflowContext(workflow_id="order-1", initial_data={"amount": 50})
    first = await WorkflowEngine(make_app(tmp_path)).execute_workflow(workflow(), context)
    assert first.status == "completed", first.error
    assert calls == ["charge", "notify"]
    # Another engine, another app on the same file: the run is found by its id, not re-run.
    second = await WorkflowEngine(make_app(tmp_path)).execute_workflow(workflow(), context)
    assert calls == ["charge", "notify"]
    assert second == first


async def _wait_for(
    app: Any, run_id: str, predicate: Any, timeout: float = 10.0
) -> list[ev.LoggedEvent]:
    async with asyncio.timeout(timeout):
        while True:
            events = await app.events(run_id)
            if predicate(events):
                return list(events)
            await asyncio.sleep(0.02)


def _restart_workflow(calls: list[str], logger: WorkflowLogger) -> Workflow:
    def approve() -> str:
        calls.append("approve")
        if calls.count("approve") == 1:
            raise ConnectionError("approval service unavailable")
        return "approved"

    def auto() -> str:
        calls.append("auto")
        return "auto-approved"

    def prepare() -> dict[str, bool]:
        calls.append("prepare")
        return {"prepared": True}

    return (
        WorkflowBuilder("restartable")
        .add_tool_step("prepare", prepare)
        .add_step(
            ConditionalStep("route")
            .condition(lambda s: WORLD["high_value"])
            .if_true(ToolStep("approve", approve).with_retry(1, delay=0.5))
            .if_false(ToolStep("auto", auto))
        )
        .with_logger(logger)
        .build()
    )


async def test_a_resumed_run_takes_the_recorded_branch_and_logs_only_live_steps(
    tmp_path: Path,
) -> None:
    WORLD["high_value"] = True
    calls: list[str] = []
    first_logger = Recorder()
    app = make_app(tmp_path)
    engine = WorkflowEngine(app)
    async with app:
        await engine.start(
            _restart_workflow(calls, first_logger), WorkflowContext(workflow_id="r1")
        )
        # Park it between the branch's first failed attempt and its retry, then stop the app.
        await _wait_for(app, "r1", lambda es: any(isinstance(e.event, ev.StepFailed) for e in es))
    assert calls == ["prepare", "approve"]
    assert first_logger.calls == [
        ("start", "prepare"),
        ("complete", "prepare"),
        ("start", "route"),
        ("start", "approve"),
    ]

    WORLD["high_value"] = False  # the lambda would now pick the other branch
    second_logger = Recorder()
    engine = WorkflowEngine(make_app(tmp_path))
    workflow = _restart_workflow(calls, second_logger)
    result = await engine.execute_workflow(workflow, WorkflowContext(workflow_id="r1"))
    assert result.status == "completed", result.error
    assert calls == ["prepare", "approve", "approve"]  # not "auto"; "prepare" not run again
    route = result.steps[1]
    assert route.output == "approved" and route.handling == {"branch": True, "ran": "approve"}
    # The logger of the resumed run hears only what ran live there: not "prepare" again.
    assert second_logger.calls == [("complete", "approve"), ("complete", "route")]
    async with engine.app:
        events = await engine.app.events("r1")
    assert markers(events, "flow.branch") == [{"value": True}]
    assert step_names(events) == ["prepare", "approve", "approve"]


async def test_a_resumed_run_whose_step_handler_now_answers_otherwise_says_so(
    tmp_path: Path,
) -> None:
    WORLD["high_value"] = True
    calls: list[str] = []

    def pay() -> None:
        calls.append("pay")
        raise RuntimeError("declined")

    def backup() -> str:
        calls.append("backup")
        if calls.count("backup") == 1:
            raise ConnectionError("flaky")
        return "backed-up"

    def handler(result: Any, context: Any) -> WorkflowStep | None:
        return ToolStep("backup", backup).with_retry(1, delay=0.5) if WORLD["high_value"] else None

    def workflow() -> Workflow:
        return (
            WorkflowBuilder("handled")
            .add_tool_step("pay", pay)
            .add_error_handler("pay", handler)
            .build()
        )

    app = make_app(tmp_path)
    async with app:
        await WorkflowEngine(app).start(workflow(), WorkflowContext(workflow_id="r1"))
        await _wait_for(app, "r1", lambda es: "backup" in [n for n in step_names(es)])
        await _wait_for(
            app, "r1", lambda es: sum(isinstance(e.event, ev.StepFailed) for e in es) == 2
        )
    WORLD["high_value"] = False  # the handler would now let the failure stand
    engine = WorkflowEngine(make_app(tmp_path))
    result = await engine.execute_workflow(workflow(), WorkflowContext(workflow_id="r1"))
    assert result.status == "failed"
    assert calls == ["pay", "backup"]  # neither run again
    assert "NonDeterminismError" in str(result.error)
    assert (
        "the log recorded the error handler of step 'pay' returning step 'backup' but the "
        "code now asks for it returning None"
    ) in str(result.error)
    assert f"{__file__}:" in str(result.error)  # where the handler is


def _compiled(source: str, blank_lines: int = 0) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile("\n" * blank_lines + source, "<flow-test>", "exec"), namespace)
    return namespace["cond"]


def _with_condition(cond: Any, version: str = "1") -> Workflow:
    return (
        WorkflowBuilder("fingerprinted", version=version)
        .add_step(ConditionalStep("c", cond, ToolStep("t", len, {"obj": "x"})))
        .build()
    )


def test_the_fingerprint_follows_the_code_not_its_position() -> None:
    source = "cond = lambda s: s.get('amount', 0) > 1000\n"
    base = _with_condition(_compiled(source)).fingerprint
    assert _with_condition(_compiled(source, blank_lines=40)).fingerprint == base
    changed = "cond = lambda s: s.get('amount', 0) > 2000\n"
    assert _with_condition(_compiled(changed)).fingerprint != base
    renamed_key = "cond = lambda s: s.get('total', 0) > 1000\n"
    assert _with_condition(_compiled(renamed_key)).fingerprint != base
    other_op = "cond = lambda s: s.get('amount', 0) >= 1000\n"
    assert _with_condition(_compiled(other_op)).fingerprint != base


def test_the_fingerprint_follows_structure_and_options() -> None:
    def build(timeout: float | None = None, retries: int = 0, step_id: str = "t") -> str:
        step = ToolStep(step_id, len, {"obj": "x"})
        if timeout:
            step.with_timeout(timeout)
        if retries:
            step.with_retry(retries)
        return WorkflowBuilder("fp").add_step(step).build().fingerprint

    base = build()
    assert build() == base
    assert len({base, build(timeout=5), build(retries=2), build(step_id="u")}) == 4


def test_the_fingerprint_follows_the_tools_code(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    def f1(x: int) -> int:
        return x

    def f2(x: int) -> int:
        return x + 1

    def build(tool: Any) -> str:
        return WorkflowBuilder("fp_tools").add_tool_step("t", tool, {"x": 1}).build().fingerprint

    assert build(f1) != build(f2)
    assert build(Tool(f1)) != build(Tool(f2))
    assert build(app.step(f1)) != build(app.step(f2))
    assert build(f1) == build(f1)


async def test_a_changed_workflow_under_the_same_version_is_refused(tmp_path: Path) -> None:
    engine = WorkflowEngine(make_app(tmp_path))
    engine.register(_with_condition(_compiled("cond = lambda s: True\n")))
    engine.register(_with_condition(_compiled("\n\ncond = lambda s: True\n")))  # same code: fine
    changed = _with_condition(_compiled("cond = lambda s: False\n"))
    with pytest.raises(WorkflowDefinitionError) as caught:
        await engine.execute_workflow(changed, WorkflowContext(workflow_id="r1"))
    message = str(caught.value)
    assert "workflow 'fingerprinted' version '1' is already registered" in message
    assert "with different steps" in message and "needs a new version" in message
    engine.register(_with_condition(_compiled("cond = lambda s: False\n"), version="2"))
    async with engine.app:
        assert await engine.app.list_runs() == []
