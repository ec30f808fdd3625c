"""ToolStep: how it finds its tool, how it is called, retried and timed out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import make_app, make_engine, run, step_names
from pydantic_ai import RunContext, Tool

from durable import WorkflowDefinitionError
from sdk.workflows import (
    LoopStep,
    ToolStep,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
    register_tool,
)


def double(x: int) -> int:
    return 2 * x


async def test_args_and_params_function(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("args")
        .add_tool_step("fixed", double, {"x": 4})
        .add_step(
            ToolStep("computed", double).with_params_function(lambda s: {"x": s["fixed"] + s["n"]})
        )
        .build()
    )
    result = await run(tmp_path, workflow, n=1)
    assert result.status == "completed", result.error
    assert [s.output for s in result.steps] == [8, 18]


async def test_params_function_wins_over_args(tmp_path: Path) -> None:
    step = ToolStep("t", double, {"x": 1}).with_params_function(lambda s: {"x": 10})
    result = await run(tmp_path, WorkflowBuilder("w").add_step(step).build())
    assert result.steps[0].output == 20


async def test_every_kind_of_tool(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app_calls: list[int] = []

    @app.step
    async def app_step(x: int) -> int:
        app_calls.append(x)
        return x + 100

    def plain_tool(x: int) -> int:
        return x + 1000

    def named(x: int) -> int:
        return x + 10

    def by_step_id(x: int) -> int:
        return x + 1

    async def registered_globally(x: int) -> int:
        return -x

    register_tool(registered_globally, name="flow_tests_negate")
    engine = WorkflowEngine(app, tools={"named_tool": named, "by_step_id": by_step_id})
    workflow = (
        WorkflowBuilder("kinds")
        .add_tool_step("function", double, {"x": 1})
        .add_tool_step("pydantic_tool", Tool(plain_tool), {"x": 2})
        .add_tool_step("app_step", app_step, {"x": 3})
        .add_tool_step("registered", "named_tool", {"x": 4})
        .add_tool_step("global", "flow_tests_negate", {"x": 5})
        .add_tool_step("by_step_id", None, {"x": 6})
        .build()
    )
    result = await run(tmp_path, workflow, engine=engine)
    assert result.status == "completed", result.error
    assert {s.step_id: s.output for s in result.steps} == {
        "function": 2,
        "pydantic_tool": 1002,
        "app_step": 103,
        "registered": 14,
        "global": -5,
        "by_step_id": 7,
    }
    assert app_calls == [3]  # the app step's function, run as this workflow's step
    async with app:
        events = await app.events("r1")
    # Each tool call is a step of the run named by the step's id.
    assert step_names(events) == [
        "function",
        "pydantic_tool",
        "app_step",
        "registered",
        "global",
        "by_step_id",
    ]


async def test_an_unknown_tool_name_fails_before_any_run_starts(tmp_path: Path) -> None:
    engine = WorkflowEngine(make_app(tmp_path), tools=[double])
    workflow = WorkflowBuilder("unknown").add_tool_step("validate_order", None, {}).build()
    with pytest.raises(WorkflowDefinitionError) as caught:
        await engine.execute_workflow(workflow, WorkflowContext(workflow_id="r1"))
    message = str(caught.value)
    assert "step 'validate_order': no tool named 'validate_order'" in message
    assert "known: " in message and "double" in message  # it lists what it knows
    assert "register_tool()" in message
    async with engine.app:
        assert await engine.app.list_runs() == []


def test_a_tool_needing_a_run_context_is_refused(tmp_path: Path) -> None:
    def with_ctx(ctx: RunContext[None], x: int) -> int:
        return x

    engine = WorkflowEngine(make_app(tmp_path))
    workflow = WorkflowBuilder("ctx_tool").add_tool_step("t", Tool(with_ctx), {"x": 1}).build()
    with pytest.raises(WorkflowDefinitionError, match="takes a RunContext"):
        engine.register(workflow)


def test_a_tool_that_is_not_callable_is_refused(tmp_path: Path) -> None:
    engine = WorkflowEngine(make_app(tmp_path))
    workflow = WorkflowBuilder("not_callable").add_tool_step("t", 42, {}).build()
    with pytest.raises(WorkflowDefinitionError, match="must be a function, a Pydantic AI Tool"):
        engine.register(workflow)


async def test_unexpected_parameter_names_fail_the_step_clearly(tmp_path: Path) -> None:
    calls: list[int] = []

    def tool(x: int) -> int:
        calls.append(x)
        return x

    workflow = WorkflowBuilder("params").add_tool_step("t", tool, {"x": 1, "colour": "red"}).build()
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert result.steps[0].error == (
        "TypeError: tool 'tool' takes no parameter(s) 'colour' (it takes x)"
    )
    assert "colour" in str(result.error) and calls == []


async def test_a_params_function_not_returning_a_dict_fails_the_step(tmp_path: Path) -> None:
    workflow = (
        WorkflowBuilder("not_dict")
        .add_step(ToolStep("t", double).with_params_function(lambda s: [1]))
        .build()
    )
    result = await run(tmp_path, workflow)
    assert result.status == "failed"
    assert "the params of step 't' must be a dict, got list" in str(result.steps[0].error)


async def test_kwargs_tools_take_anything(tmp_path: Path) -> None:
    def anything(**kwargs: Any) -> dict[str, Any]:
        return {"got": sorted(kwargs)}

    workflow = WorkflowBuilder("kw").add_tool_step("t", anything, {"a": 1, "b": 2}).build()
    result = await run(tmp_path, workflow)
    assert result.steps[0].output == {"got": ["a", "b"]}


async def test_state_and_iteration_are_given_to_tools_that_ask(tmp_path: Path) -> None:
    seen: list[tuple[int, dict[str, Any]]] = []

    def body(iteration: int, state: dict[str, Any]) -> int:
        seen.append((iteration, state))
        return iteration * 10

    def plain(state: dict[str, Any]) -> str:
        return f"{state['customer']} ({len(state)} keys)"

    workflow = (
        WorkflowBuilder("inject")
        .add_step(LoopStep("loop", ToolStep("body", body), max_iterations=3))
        .add_tool_step("plain", plain)
        .build()
    )
    result = await run(tmp_path, workflow, customer="c1")
    assert result.status == "completed", result.error
    assert [i for i, _ in seen] == [0, 1, 2]
    # The state a tool gets is the context's mapping at that point: the earlier iterations'
    # outputs are in it (each stored under the step id "body").
    assert seen[0][1] == {"customer": "c1"}
    assert seen[2][1] == {"customer": "c1", "body": 10}
    assert result.steps[0].output == [0, 10, 20]
    assert result.steps[1].output == "c1 (2 keys)"  # customer, body (a loop: results only)


async def test_iteration_is_not_given_outside_a_loop(tmp_path: Path) -> None:
    def tool(iteration: int = -1) -> int:
        return iteration

    result = await run(tmp_path, WorkflowBuilder("no_it").add_tool_step("t", tool).build())
    assert result.steps[0].output == -1


def _flaky(calls: list[int], fail_times: int) -> Any:
    def tool() -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise ConnectionError(f"network down (call {len(calls)})")
        return "ok"

    return tool


@pytest.mark.parametrize(
    ("retry", "attempts"),
    [
        ({"max_retries": 2}, 3),
        ({"max_attempts": 2}, 2),
        ({"max_attempts": 1}, 1),
    ],
)
async def test_with_retry_counts_attempts(
    tmp_path: Path, retry: dict[str, int], attempts: int
) -> None:
    calls: list[int] = []
    step = ToolStep("flaky", _flaky(calls, fail_times=100)).with_retry(**retry, delay=0.01)
    result = await run(tmp_path, WorkflowBuilder("retry").add_step(step).build())
    assert len(calls) == attempts
    assert result.status == "failed"
    assert result.steps[0].error is not None
    assert f"network down (call {attempts})" in result.steps[0].error  # the last attempt's


async def test_with_retry_positional_means_retries(tmp_path: Path) -> None:
    calls: list[int] = []
    step = ToolStep("flaky", _flaky(calls, fail_times=2)).with_retry(2, delay=0.01)
    result = await run(tmp_path, WorkflowBuilder("retry2").add_step(step).build())
    assert result.status == "completed", result.error
    assert len(calls) == 3 and result.steps[0].output == "ok"
    async with make_app(tmp_path) as app:
        assert step_names(await app.events("r1")) == ["flaky"] * 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.with_retry(), "takes max_retries .* or max_attempts=, one of them"),
        (lambda s: s.with_retry(1, max_attempts=2), "one of them"),
        (lambda s: s.with_retry(-1), "retries >= 0"),
        (lambda s: s.with_retry(max_attempts=0), "max_attempts >= 1"),
        (lambda s: s.with_timeout(0), "with_timeout\\(\\) must be a finite number of seconds > 0"),
        (lambda s: s.with_retry(1, delay=-1), "delay must be"),
    ],
)
def test_bad_options_are_refused(call: Any, message: str) -> None:
    with pytest.raises(WorkflowDefinitionError, match=message):
        call(ToolStep("s", double))


async def test_with_timeout_fails_a_slow_async_tool(tmp_path: Path) -> None:
    finished: list[str] = []

    async def slow() -> str:
        await asyncio.sleep(5)
        finished.append("slow")
        return "late"

    workflow = (
        WorkflowBuilder("timeout")
        .add_step(ToolStep("slow", slow).with_timeout(0.2))
        .add_tool_step("after", double, {"x": 1})
        .build()
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await run(tmp_path, workflow)
    assert loop.time() - began < 3
    assert result.status == "failed"
    assert [s.step_id for s in result.steps] == ["slow"]  # the next step did not run
    error = result.steps[0].error or ""
    assert "step 'slow' attempt 1 timed out after 0.2s" in error, error
    assert finished == []


async def test_a_fast_tool_within_its_timeout_succeeds(tmp_path: Path) -> None:
    async def quick() -> str:
        return "done"

    workflow = WorkflowBuilder("fast").add_step(ToolStep("quick", quick).with_timeout(5)).build()
    result = await run(tmp_path, workflow)
    assert result.status == "completed" and result.steps[0].output == "done"


async def test_make_engine_uses_the_test_model(tmp_path: Path) -> None:
    assert make_engine(tmp_path).model == "test"
