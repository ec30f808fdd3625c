"""Error handlers: a step's own (add_error_handler: a fallback step, or None) and the
workflow's (with_error_handler: retry, continue, fail), each answer recorded in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import by_id, make_app, markers, run

from durable import WorkflowDefinitionError
from sdk.workflows import (
    StepError,
    StepResult,
    ToolStep,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
    WorkflowStep,
)


def flaky(
    calls: list[str], name: str, fail_times: int, message: str = "Network unreachable"
) -> Any:
    def tool() -> dict[str, str]:
        calls.append(name)
        if sum(1 for c in calls if c == name) <= fail_times:
            raise ConnectionError(message)
        return {name: "ok"}

    tool.__name__ = name
    return tool


async def test_a_step_handler_returning_a_fallback_step_replaces_the_failure(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    got: list[tuple[StepResult, dict[str, Any]]] = []

    def handler(step_result: StepResult, context: WorkflowContext) -> WorkflowStep:
        got.append((step_result, dict(context)))
        return ToolStep("manual_review", flaky(calls, "manual_review", 0))

    workflow = Workflow("payment_processing", "Payment Processing")
    workflow.add_step(
        ToolStep("process_payment", flaky(calls, "process_payment", 99, "card timeout"))
    )
    workflow.add_step(ToolStep("receipt", flaky(calls, "receipt", 0)))
    workflow.add_error_handler("process_payment", handler)
    result = await run(tmp_path, workflow, amount=100)
    assert result.status == "completed", result.error
    assert calls == ["process_payment", "manual_review", "receipt"]
    [(failed, state)] = got
    assert failed.step_id == "process_payment" and failed.is_failure
    assert failed.error is not None and "timeout" in failed.error  # the document's test
    assert state == {"amount": 100}
    top = result.steps[0]
    assert (top.step_id, top.status, top.output) == (
        "process_payment",
        "success",
        {"manual_review": "ok"},
    )
    assert top.handling == {"action": "replaced", "by": "manual_review", "error": failed.error}
    assert by_id(result)["manual_review"].parent_id == "process_payment"
    assert result.context.variables["manual_review"] == "ok"
    assert result.success_rate == 100.0
    async with make_app(tmp_path) as app:
        events = await app.events("r1")
    assert markers(events, "flow.handler") == [{"step": "manual_review"}]


async def test_a_step_handler_returning_none_lets_the_failure_stand(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("none_handler")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99)))
        .add_step(ToolStep("after", flaky(calls, "after", 0)))
        .add_error_handler("pay", lambda result, context: None)
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert calls == ["pay"]
    assert result.steps[0].error == "ConnectionError: Network unreachable"
    assert result.steps[0].handling is None


def test_a_handler_for_an_unknown_step_is_refused(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("unknown_handler")
        .add_tool_step("pay", len, {"obj": "x"})
        .add_error_handler("payy", lambda r, c: None)
        .build()
    )
    with pytest.raises(
        WorkflowDefinitionError,
        match="error handler for unknown step\\(s\\) 'payy'; its steps are 'pay'",
    ):
        WorkflowEngine(make_app(tmp_path)).register(workflow)


def _document_handler(
    error: Exception, step: WorkflowStep, state: WorkflowContext
) -> dict[str, Any]:
    # The order-processing example's handler, as the document writes it.
    return {
        "action": "retry" if "network" in str(error).lower() else "fail",
        "escalate": True,
        "notify_team": True,
    }


async def test_retry_runs_the_step_again(tmp_path: Path) -> None:
    calls: list[str] = []
    seen: list[tuple[Any, Any, Any]] = []

    def handler(error: Exception, step: WorkflowStep, state: WorkflowContext) -> dict[str, Any]:
        seen.append((error, step, state))
        return _document_handler(error, step, state)

    pay = ToolStep("pay", flaky(calls, "pay", 2))
    workflow = WorkflowBuilder("retrying").add_step(pay).with_error_handler(handler).build()
    result = await run(tmp_path, workflow)
    assert result.status == "completed", result.error
    assert calls == ["pay"] * 3
    error, step, state = seen[0]
    assert isinstance(error, StepError) and str(error) == "ConnectionError: Network unreachable"
    assert step is pay and isinstance(state, WorkflowContext)
    assert result.steps[0].handling == {
        "action": "retry",
        "escalate": True,
        "notify_team": True,
        "retries": 2,
    }
    async with make_app(tmp_path) as app:
        events = await app.events("r1")
    assert [m["value"]["action"] for m in markers(events, "flow.on_error")] == ["retry", "retry"]


async def test_retry_is_bounded_at_three(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("retry_bound")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99)))
        .with_error_handler(lambda e, s, c: {"action": "retry"})
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert calls == ["pay"] * 4  # the first try and three retries
    assert result.steps[0].handling == {"action": "retry", "retries": 3}


async def test_retry_counts_with_the_steps_own_attempts(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("retry_attempts")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99)).with_retry(max_attempts=2, delay=0.01))
        .with_error_handler(lambda e, s, c: {"action": "retry"})
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert len(calls) == 2 * 4  # each of the four runs of the step makes its two attempts


async def test_fail_stops_the_workflow(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("failing")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99, "card declined")))
        .add_step(ToolStep("after", flaky(calls, "after", 0)))
        .with_error_handler(_document_handler)
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert calls == ["pay"]  # "declined" is not a network error: no retry
    assert result.steps[0].handling == {
        "action": "fail",
        "escalate": True,
        "notify_team": True,
        "retries": 0,
    }
    assert result.error == "step 'pay' failed: ConnectionError: card declined"


async def test_continue_goes_on_without_the_step(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("continuing")
        .add_step(ToolStep("optional", flaky(calls, "optional", 99)))
        .add_step(ToolStep("after", flaky(calls, "after", 0)))
        .with_error_handler(lambda e, s, c: {"action": "continue", "reason": "optional"})
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "completed", result.error
    assert calls == ["optional", "after"]
    assert [s.status for s in result.steps] == ["failed", "success"]
    assert result.steps[0].handling == {
        "action": "continue",
        "reason": "optional",
        "continued": True,
        "retries": 0,
    }
    assert result.success_rate == 50.0
    assert (result.steps_completed, result.total_steps) == (1, 2)
    assert result.error is None
    async with make_app(tmp_path) as app:
        assert (await app.get_run("r1")).status == "succeeded"


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        (lambda e, s, c: 1 / 0, "ZeroDivisionError: division by zero"),
        (lambda e, s, c: ToolStep("x", len), "returns a dict such as"),
    ],
)
async def test_a_handler_that_raises_or_returns_a_step_fails_the_step(
    tmp_path: Path, handler: Any, why: str
) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("bad_handler")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99)))
        .with_error_handler(handler)
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed" and calls == ["pay"]
    handling = result.steps[0].handling
    assert handling is not None and handling["action"] == "fail"
    assert why in handling["handler_error"]


async def test_a_not_dict_answer_means_fail(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("str_answer")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99)))
        .with_error_handler(lambda e, s, c: "retry")
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed" and calls == ["pay"]


async def test_the_workflow_handler_is_asked_when_the_fallback_fails_too(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("fallback_fails")
        .add_step(ToolStep("pay", flaky(calls, "pay", 99)))
        .add_step(ToolStep("after", flaky(calls, "after", 0)))
        .add_error_handler("pay", lambda r, c: ToolStep("backup", flaky(calls, "backup", 99)))
        .with_error_handler(lambda e, s, c: {"action": "continue"})
        .build()
    )
    result = await run(tmp_path, workflow)
    assert calls == ["pay", "backup", "after"]
    assert result.status == "completed", result.error
    # The workflow's handler was asked about the fallback, and its answer holds for the step.
    assert by_id(result)["backup"].handling == {
        "action": "continue",
        "continued": True,
        "retries": 0,
    }
    handling = result.steps[0].handling
    assert handling is not None and handling["action"] == "replaced" and handling["continued"]
    assert [s.status for s in result.steps] == ["failed", "success"]
