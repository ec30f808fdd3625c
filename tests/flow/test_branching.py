"""Conditions, ConditionalStep and LoopStep: what runs, what is skipped, and each decision
recorded as a marker of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import by_id, make_app, markers, run, step_names

from durable import WorkflowDefinitionError
from sdk.workflows import (
    ConditionalStep,
    LoopStep,
    ToolStep,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
)


def _recorder(calls: list[str], name: str, output: Any = None) -> Any:
    def tool() -> Any:
        calls.append(name)
        return output if output is not None else name

    return tool


async def test_a_false_condition_skips_the_step(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("cond")
        .add_step(
            ToolStep("a", _recorder(calls, "a")).add_condition(lambda c: c["priority"] == "high")
        )
        .add_step(
            ToolStep("b", _recorder(calls, "b"))
            .add_condition(lambda c: True)
            .add_condition(lambda c: c.get("missing") is None)
        )
        .build()
    )
    result = await run(tmp_path, workflow, priority="low")
    assert result.status == "completed", result.error
    assert calls == ["b"]
    assert [(s.step_id, s.status) for s in result.steps] == [("a", "skipped"), ("b", "success")]
    assert result.steps[0].is_skipped and result.steps[0].output is None
    assert "a" not in result.context.variables
    async with make_app(tmp_path) as app:
        events = await app.events("r1")
    assert step_names(events) == ["b"]
    assert markers(events, "flow.condition") == [{"value": False}, {"value": True}]


async def test_one_false_condition_of_several_skips(tmp_path: Path) -> None:
    calls: list[str] = []
    step = (
        ToolStep("a", _recorder(calls, "a"))
        .add_condition(lambda c: True)
        .add_condition(lambda c: 0)
    )
    result = await run(tmp_path, WorkflowBuilder("cond2").add_step(step).build())
    assert calls == [] and result.steps[0].status == "skipped"


async def test_a_condition_that_raises_fails_the_step_naming_the_error(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("cond_raises")
        .add_step(ToolStep("a", _recorder(calls, "a")).add_condition(lambda c: c["nope"]))
        .add_tool_step("after", _recorder(calls, "after"))
        .build()
    )
    result = await run(tmp_path, workflow)
    assert calls == []
    assert result.status == "failed"
    assert result.steps[0].status == "failed"
    assert result.steps[0].error == "its condition raised KeyError: 'nope'"
    assert result.error == "step 'a' failed: its condition raised KeyError: 'nope'"


@pytest.mark.parametrize(("amount", "ran"), [(5000, "approval"), (10, "auto_approve")])
async def test_conditional_takes_the_branch_its_condition_picks(
    tmp_path: Path, amount: int, ran: str
) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("payment")
        .add_step(
            ConditionalStep(
                "payment_check",
                condition=lambda c: c.variables.get("payment_amount", 0) > 1000,
                true_step=ToolStep("approval", _recorder(calls, "approval")),
                false_step=ToolStep("auto_approve", _recorder(calls, "auto_approve")),
            )
        )
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    context = WorkflowContext(workflow_id="r1", variables={"payment_amount": amount})
    result = await engine.execute_workflow(workflow, context)
    assert result.status == "completed", result.error
    assert calls == [ran]
    top = result.steps[0]
    assert (top.step_id, top.step_type, top.status, top.output) == (
        "payment_check",
        "conditional",
        "success",
        ran,
    )
    assert top.handling == {"branch": amount > 1000, "ran": ran}
    inner = by_id(result)[ran]
    assert inner.parent_id == "payment_check" and inner.step_type == "tool"
    assert [s.step_id for s in result.all_steps] == [ran, "payment_check"]  # finish order
    assert result.total_steps == 1 and len(result.steps) == 1


async def test_a_missing_branch_skips_the_conditional(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("only_true")
        .add_step(
            ConditionalStep("check")
            .condition(lambda s: False)
            .if_true(ToolStep("t", _recorder(calls, "t")))
        )
        .add_tool_step("next", _recorder(calls, "next"))
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "completed", result.error
    assert calls == ["next"]
    assert result.steps[0].status == "skipped"
    assert result.steps[0].handling == {"branch": False, "ran": None}
    assert result.success_rate == 100.0  # a skipped step does not count against it


async def test_a_failing_branch_fails_the_conditional(tmp_path: Path) -> None:
    def broken() -> None:
        raise ValueError("card declined")

    workflow = (
        WorkflowBuilder("branch_fails")
        .add_step(ConditionalStep("check", lambda s: True, ToolStep("pay", broken)))
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert result.steps[0].status == "failed" and "card declined" in str(result.steps[0].error)
    assert by_id(result)["pay"].status == "failed"


async def test_a_conditional_whose_condition_raises_fails_naming_the_error(tmp_path: Path) -> None:
    calls: list[str] = []
    workflow = (
        WorkflowBuilder("branch_raises")
        .add_step(ConditionalStep("check", lambda s: 1 / 0, ToolStep("t", _recorder(calls, "t"))))
        .build()
    )
    result = await run(tmp_path, workflow)
    assert calls == [] and result.status == "failed"
    assert result.steps[0].error == "its condition raised ZeroDivisionError: division by zero"


def test_a_conditional_without_a_condition_is_refused(tmp_path: Path) -> None:
    engine = WorkflowEngine(make_app(tmp_path))
    workflow = (
        WorkflowBuilder("no_cond")
        .add_step(ConditionalStep("c").if_true(ToolStep("t", len)))
        .build()
    )
    with pytest.raises(WorkflowDefinitionError, match="conditional step 'c' has no condition"):
        engine.register(workflow)


def test_declaration_errors() -> None:
    with pytest.raises(WorkflowDefinitionError, match=r"needs a step .* got str"):
        ConditionalStep("c").if_true("not a step")  # type: ignore[arg-type]
    with pytest.raises(WorkflowDefinitionError, match="needs a function"):
        ToolStep("t").add_condition(True)  # type: ignore[arg-type]
    with pytest.raises(WorkflowDefinitionError, match="max_iterations must be an int >= 1"):
        LoopStep("l", ToolStep("t"), max_iterations=0)
    with pytest.raises(WorkflowDefinitionError, match="two steps have the id 't'"):
        WorkflowEngine(make_app(Path("/nonexistent"))).register(
            WorkflowBuilder("dup").add_tool_step("t", len).add_tool_step("t", len).build()
        )


async def test_loop_condition_with_iteration(tmp_path: Path) -> None:
    seen: list[int] = []

    def process(iteration: int, orders: list[str]) -> str:
        seen.append(iteration)
        return orders[iteration].upper()

    workflow = (
        WorkflowBuilder("loop2")
        .add_step(
            LoopStep(
                "process_orders",
                ToolStep("process_item", process).with_params_function(
                    lambda s: {"orders": s["orders"]}
                ),
                condition=lambda context, iteration: (
                    iteration < len(context.variables.get("orders", []))
                ),
                max_iterations=10,
            )
        )
        .build()
    )
    engine = WorkflowEngine(make_app(tmp_path))
    context = WorkflowContext(workflow_id="r1", variables={"orders": ["a", "b", "c"]})
    result = await engine.execute_workflow(workflow, context)
    assert result.status == "completed", result.error
    assert seen == [0, 1, 2]
    loop = result.steps[0]
    assert loop.output == ["A", "B", "C"] and loop.handling == {"iterations": 3}
    assert [s.parent_id for s in result.all_steps] == ["process_orders"] * 3 + [None]
    async with engine.app:
        events = await engine.app.events("r1")
    # One decision per turn, the last one the "stop".
    assert [m["value"] for m in markers(events, "flow.loop")] == [True, True, True, False]


async def test_loop_one_argument_condition_sees_the_outputs(tmp_path: Path) -> None:
    counter: list[int] = []

    def bump() -> dict[str, int]:
        counter.append(1)
        return {"count": len(counter)}

    workflow = (
        WorkflowBuilder("loop1")
        .add_step(
            LoopStep(
                "until_three", ToolStep("bump", bump), condition=lambda s: s.get("count", 0) < 3
            )
        )
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "completed", result.error
    assert len(counter) == 3
    assert result.steps[0].output == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert result.context.variables == {"count": 3}


async def test_loop_stops_at_max_iterations(tmp_path: Path) -> None:
    calls: list[str] = []
    loop = LoopStep(
        "forever",
        ToolStep("t", _recorder(calls, "t")),
        condition=lambda c, i: True,
        max_iterations=4,
    )
    result = await run(tmp_path, WorkflowBuilder("capped").add_step(loop).build())
    assert result.status == "completed", result.error
    assert len(calls) == 4 and len(result.steps[0].output) == 4


async def test_loop_without_condition_runs_max_iterations(tmp_path: Path) -> None:
    calls: list[str] = []
    loop = LoopStep("twice", ToolStep("t", _recorder(calls, "t")), max_iterations=2)
    result = await run(tmp_path, WorkflowBuilder("nocond").add_step(loop).build())
    assert len(calls) == 2 and result.steps[0].output == ["t", "t"]


async def test_a_failed_iteration_fails_the_loop(tmp_path: Path) -> None:
    def body(iteration: int) -> int:
        if iteration == 2:
            raise RuntimeError("item 2 is corrupt")
        return iteration

    workflow = (
        WorkflowBuilder("loop_fails")
        .add_step(LoopStep("items", ToolStep("item", body), max_iterations=5))
        .add_tool_step("after", len, {"obj": "x"})
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    loop = result.steps[0]
    assert loop.status == "failed" and loop.output == [0, 1]
    assert loop.error is not None
    assert loop.error.startswith("iteration 2 failed:") and "item 2 is corrupt" in loop.error
    assert [s.step_id for s in result.steps] == ["items"]  # nothing after it ran


async def test_a_loop_condition_that_raises_fails_the_loop(tmp_path: Path) -> None:
    loop = LoopStep(
        "l", ToolStep("t", len, {"obj": "ab"}), condition=lambda c, i: [][i], max_iterations=3
    )
    result = await run(tmp_path, WorkflowBuilder("loop_raises").add_step(loop).build())
    assert result.status == "failed"
    assert (
        result.steps[0].error
        == "its condition raised IndexError: list index out of range (iteration 0)"
    )
