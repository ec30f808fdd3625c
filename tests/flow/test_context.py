"""WorkflowContext: the Mapping the document's lambdas read (`state["order_id"]`), how each
step's output is merged into it, and the errors a bad run input gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flow_helpers import make_engine, run

from sdk.workflows import ConditionalStep, ToolStep, WorkflowBuilder, WorkflowContext


def test_the_mapping_reads_variables_over_initial_data() -> None:
    context = WorkflowContext(
        workflow_id="w",
        variables={"a": 1, "shared": "variable"},
        initial_data={"b": 2, "shared": "initial"},
    )
    assert context["a"] == 1 and context["b"] == 2
    assert context["shared"] == "variable"  # a variable shadows the initial datum
    assert sorted(context) == ["a", "b", "shared"]
    assert len(context) == 3
    assert context.get("missing", "default") == "default"
    assert "b" in context and "missing" not in context
    assert dict(context) == {"a": 1, "shared": "variable", "b": 2}
    assert context.data is context.variables
    with pytest.raises(KeyError):
        context["missing"]


def test_record_merges_dicts_and_keeps_other_outputs_under_the_step_id() -> None:
    context = WorkflowContext(variables={"kept": True})
    context.record("validate", {"order_valid": True, "kept": "overwritten"})
    context.record("count", 3)
    context.record("pairs", {1: "not a str key"})
    assert context.variables == {
        "kept": "overwritten",
        "order_valid": True,
        "count": 3,
        "pairs": {1: "not a str key"},  # non-str keys: not merged, kept under the id
    }
    assert context.results == {
        "validate": {"order_valid": True, "kept": "overwritten"},
        "count": 3,
        "pairs": {1: "not a str key"},
    }


def test_the_fields_are_copied_so_the_callers_dicts_are_not_changed() -> None:
    variables = {"a": 1}
    context = WorkflowContext(variables=variables)
    context.record("b", 2)
    assert variables == {"a": 1}
    assert WorkflowContext(variables=None).variables == {}  # type: ignore[arg-type]


def test_a_field_that_is_not_a_dict_is_refused() -> None:
    with pytest.raises(TypeError, match="WorkflowContext variables must be a dict, not list"):
        WorkflowContext(variables=[1, 2])  # type: ignore[arg-type]


def test_payload_round_trip() -> None:
    context = WorkflowContext(
        workflow_id="w1",
        user_context={"u": 1},
        variables={"v": 2},
        metadata={"m": 3},
        initial_data={"i": 4},
        results={"r": 5},
    )
    assert WorkflowContext.from_payload(context.to_payload()) == context


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "a builder workflow's input is a WorkflowContext .* not list"),
        ("order-1", "not str"),
        (
            {"variables": {}, "colour": 1, "size": 2},
            "unknown WorkflowContext field\\(s\\) 'colour', 'size'",
        ),
        ({"variables": 5}, "WorkflowContext variables must be a dict, not int"),
    ],
)
def test_from_payload_refuses_bad_input(payload: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        WorkflowContext.from_payload(payload)


async def test_a_run_started_with_a_bad_input_fails_saying_why(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    calls: list[str] = []
    workflow = WorkflowBuilder("bad_input").add_tool_step("t", lambda: calls.append("t")).build()
    engine.register(workflow)
    async with engine.app:
        handle = await engine.app.start("bad_input", {"colour": "red"}, run_id="r1")
        await engine.app.engine.client.wait(handle.run_id)
        info = await engine.app.get_run("r1")
        result = await engine.result(workflow, "r1")
    assert info.status == "failed"
    assert "unknown WorkflowContext field(s) 'colour'" in str(info.error)
    assert result.status == "failed" and "colour" in str(result.error)
    assert calls == []


async def test_outputs_flow_into_later_steps_lambdas(tmp_path: Path) -> None:
    seen: list[Any] = []

    def validate(order_id: str) -> dict[str, Any]:
        return {"order_valid": order_id.startswith("ORD"), "checked": order_id}

    def total() -> float:
        return 109.97

    def ship(order_id: str, amount: float, valid: bool) -> str:
        seen.append((order_id, amount, valid))
        return "label-1"

    workflow = (
        WorkflowBuilder("merging")
        .add_step(
            ToolStep("validate", validate).with_params_function(
                lambda s: {"order_id": s["order_id"]}
            )
        )
        .add_tool_step("total", total)
        .add_step(
            ConditionalStep("when_valid")
            .condition(lambda s: s.get("order_valid", False))
            .if_true(
                ToolStep("ship", ship).with_params_function(
                    lambda s: {
                        "order_id": s["checked"],
                        "amount": s["total"],
                        "valid": s["order_valid"],
                    }
                )
            )
        )
        .build()
    )
    result = await run(tmp_path, workflow, order_id="ORD-1")
    assert result.status == "completed", result.error
    assert seen == [("ORD-1", 109.97, True)]
    final = result.context
    assert final.initial_data == {"order_id": "ORD-1"}
    assert final.variables == {
        "order_valid": True,
        "checked": "ORD-1",
        "total": 109.97,
        "ship": "label-1",
    }
    assert final.results["validate"] == {"order_valid": True, "checked": "ORD-1"}
    assert final.results["total"] == 109.97
    assert final.results["ship"] == "label-1"
    assert final.results["when_valid"] == "label-1"  # a composite: its output, by its id
    assert "when_valid" not in final.variables  # ...but its branch's merge is the only one
    assert final["order_id"] == "ORD-1"


async def test_user_context_and_metadata_reach_lambdas_and_the_result(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("ctx_fields")
        .add_step(
            ToolStep("greet", lambda name, priority: f"{name}/{priority}").with_params_function(
                lambda c: {
                    "name": c.user_context["customer_id"],
                    "priority": c.metadata["priority"],
                }
            )
        )
        .build()
    )
    context = WorkflowContext(
        workflow_id="r1", user_context={"customer_id": "c1"}, metadata={"priority": "high"}
    )
    result = await make_engine(tmp_path).execute_workflow(workflow, context)
    assert result.status == "completed", result.error
    assert result.context.variables["greet"] == "c1/high"
    assert result.context.user_context == {"customer_id": "c1"}
    assert result.context.metadata == {"priority": "high"}
    assert result.context.workflow_id == "r1" and result.run_id == "r1"
