"""ParallelStep: its failure policies, minimum success count, early exits (fail_fast,
wait_for_all=False, its timeout) and how branch outputs reach the context."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flow_helpers import by_id, make_app, run

from durable import WorkflowDefinitionError
from sdk.workflows import LoopStep, ParallelStep, ToolStep, WorkflowBuilder, WorkflowStep


def ok(name: str, calls: list[str], delay: float = 0.0) -> ToolStep:
    async def tool() -> dict[str, str]:
        if delay:
            await asyncio.sleep(delay)
        calls.append(name)
        return {f"{name}_done": name}

    return ToolStep(name, tool)


def failing(name: str, calls: list[str]) -> ToolStep:
    async def tool() -> None:
        calls.append(name)
        raise RuntimeError(f"{name} is down")

    return ToolStep(name, tool)


def workflow_of(step: WorkflowStep, name: str = "par") -> Any:
    return WorkflowBuilder(name).add_step(step).build()


async def test_all_branches_succeed_and_outputs_merge(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep("setup", [ok("a", calls), ok("b", calls), ok("c", calls)], wait_for_all=True)
    result = await run(tmp_path, workflow_of(par))
    assert result.status == "completed", result.error
    assert sorted(calls) == ["a", "b", "c"]
    top = result.steps[0]
    assert top.step_type == "parallel"
    assert top.output == {"a": {"a_done": "a"}, "b": {"b_done": "b"}, "c": {"c_done": "c"}}
    assert top.handling == {"policy": "all_must_succeed", "succeeded": 3, "failed": {}}
    assert result.context.variables == {"a_done": "a", "b_done": "b", "c_done": "c"}
    assert result.context.results["setup"] == top.output
    assert {s.step_id: s.parent_id for s in result.all_steps} == {
        "a": "setup",
        "b": "setup",
        "c": "setup",
        "setup": None,
    }


async def test_all_must_succeed_fails_when_one_branch_fails(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep("p").add_branch(ok("a", calls, 0.2)).add_branch(failing("b", calls))
    result = await run(tmp_path, workflow_of(par))
    assert result.status == "failed"
    assert sorted(calls) == ["a", "b"]  # it waited for "a" all the same
    top = result.steps[0]
    assert top.status == "failed"
    assert top.error == "1 of 2 branches failed: b: RuntimeError: b is down"
    assert top.output == {"a": {"a_done": "a"}}
    assert result.error == f"step 'p' failed: {top.error}"


@pytest.mark.parametrize(("failures", "status"), [(1, "completed"), (2, "failed")])
async def test_minimum_success_count_of_a_partial_failure(
    tmp_path: Path, failures: int, status: str
) -> None:
    calls: list[str] = []
    branches = [failing(f"f{i}", calls) for i in range(failures)]
    branches += [ok(f"s{i}", calls) for i in range(4 - failures)]
    par = ParallelStep("fulfilment")
    for branch in branches:
        par.add_branch(branch)
    par.with_failure_policy("continue_on_partial_failure").with_minimum_success_count(3)
    result = await run(tmp_path, workflow_of(par))
    assert len(calls) == 4
    assert result.status == status, result.error
    top = result.steps[0]
    assert top.handling is not None and top.handling["succeeded"] == 4 - failures
    assert set(top.handling["failed"]) == {f"f{i}" for i in range(failures)}
    if status == "completed":
        assert top.error is None and len(top.output) == 3
        assert result.success_rate == 100.0  # the step succeeded; its branches are nested
        assert sum(1 for s in result.all_steps if s.is_failure) == 1
    else:
        assert top.error is not None and top.error.startswith("2 of 4 branches failed")


async def test_continue_on_failure_always_succeeds(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep("p", [failing("a", calls), failing("b", calls)]).with_failure_policy(
        "continue_on_failure"
    )
    result = await run(tmp_path, workflow_of(par))
    assert result.status == "completed" and result.steps[0].output == {}


async def test_fail_fast_stops_at_the_first_failure(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep("p", [ok("slow", calls, 3.0), failing("bad", calls)]).with_failure_policy(
        "fail_fast"
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await run(tmp_path, workflow_of(par))
    assert loop.time() - began < 2.5
    assert result.status == "failed"
    assert calls == ["bad"]
    top = result.steps[0]
    assert top.handling is not None
    assert top.handling["failed"] == {"bad": "RuntimeError: bad is down", "slow": "cancelled"}
    await asyncio.sleep(0.2)
    assert calls == ["bad"]  # the slow branch was cancelled, not left running


async def test_wait_for_all_false_finishes_at_the_first_success(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep(
        "race", [ok("slow", calls, 3.0), ok("fast", calls, 0.05)], wait_for_all=False
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await run(tmp_path, workflow_of(par))
    assert loop.time() - began < 2.5
    assert result.status == "completed", result.error
    top = result.steps[0]
    assert top.output == {"fast": {"fast_done": "fast"}}
    assert result.context.variables == {"fast_done": "fast"}
    assert "slow" not in by_id(result)  # no result recorded for the cancelled branch
    await asyncio.sleep(0.2)
    assert calls == ["fast"]
    async with make_app(tmp_path) as app:
        assert (await app.get_run("r1")).status == "succeeded"


async def test_wait_for_all_false_with_a_minimum(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep(
        "race",
        [ok("a", calls, 0.01), ok("b", calls, 0.1), ok("slow", calls, 3.0)],
        wait_for_all=False,
    ).with_minimum_success_count(2)
    result = await run(tmp_path, workflow_of(par))
    assert result.status == "completed", result.error
    assert sorted(result.steps[0].output) == ["a", "b"]
    assert sorted(calls) == ["a", "b"]


async def test_the_timeout_fails_the_parallel_step(tmp_path: Path) -> None:
    calls: list[str] = []
    par = ParallelStep("p", [ok("quick", calls), ok("slow", calls, 3.0)]).with_timeout(0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await run(tmp_path, workflow_of(par))
    assert loop.time() - began < 2.5
    assert result.status == "failed"
    top = result.steps[0]
    assert top.handling is not None
    assert top.handling["failed"] == {"slow": "timed out after 0.3s"}
    assert top.output == {"quick": {"quick_done": "quick"}}
    assert calls == ["quick"]
    assert top.error == "1 of 2 branches failed: slow: timed out after 0.3s"


async def test_a_timeout_counts_the_branches_done_by_then_for_the_policy(tmp_path: Path) -> None:
    # The order-processing case: one of four fulfilment branches hangs; three succeeded by the
    # parallel step's timeout, which "continue on partial failure, at least 3" accepts.
    calls: list[str] = []
    par = ParallelStep(
        "fulfilment", [ok("a", calls), ok("b", calls), ok("c", calls), ok("hung", calls, 3.0)]
    )
    par.with_failure_policy("continue_on_partial_failure").with_minimum_success_count(3)
    par.with_timeout(0.3)
    result = await run(tmp_path, workflow_of(par))
    assert result.status == "completed", result.error
    top = result.steps[0]
    assert sorted(top.output) == ["a", "b", "c"]
    assert top.handling is not None and top.handling["failed"] == {"hung": "timed out after 0.3s"}
    assert sorted(calls) == ["a", "b", "c"]


async def test_branches_do_not_see_each_others_outputs(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def slow_body(iteration: int, state: dict[str, Any]) -> str:
        if iteration == 0:
            await asyncio.sleep(0.3)  # the other branch finishes meanwhile
        else:
            seen.append(state)
        return f"slow{iteration}"

    async def fast() -> dict[str, str]:
        return {"fast_value": "x"}

    par = ParallelStep("p").add_branch(
        LoopStep("slow", ToolStep("slow_body", slow_body), max_iterations=2)
    )
    par.add_branch(ToolStep("fast", fast))
    result = await run(tmp_path, workflow_of(par), given=1)
    assert result.status == "completed", result.error
    assert seen == [{"given": 1, "slow_body": "slow0"}]  # its own output, not "fast_value"
    assert result.context.variables == {"slow_body": "slow1", "fast_value": "x"}


async def test_outputs_are_merged_in_branch_order_not_finishing_order(tmp_path: Path) -> None:
    def writer(name: str, delay: float) -> ToolStep:
        async def tool() -> dict[str, str]:
            await asyncio.sleep(delay)
            return {"winner": name, name: "ran"}

        return ToolStep(name, tool)

    # "second" finishes first; merged in branch order, "second" is merged last and wins.
    par = ParallelStep("p", [writer("first", 0.3), writer("second", 0.0)])
    result = await run(tmp_path, workflow_of(par))
    assert result.status == "completed", result.error
    finished = [s.step_id for s in result.all_steps if s.parent_id == "p"]
    assert finished == ["second", "first"]
    assert result.context.variables == {"winner": "second", "first": "ran", "second": "ran"}
    assert list(result.steps[0].output) == ["first", "second"]


def test_bad_parallel_options_are_refused() -> None:
    with pytest.raises(WorkflowDefinitionError, match="unknown failure policy 'best_effort'"):
        ParallelStep("p").with_failure_policy("best_effort")
    with pytest.raises(
        WorkflowDefinitionError, match="with_minimum_success_count\\(\\) needs an int >= 1"
    ):
        ParallelStep("p").with_minimum_success_count(0)
    with pytest.raises(WorkflowDefinitionError, match="add_branch\\(\\) needs a step"):
        ParallelStep("p").add_branch(lambda s: s)  # type: ignore[arg-type]


async def test_a_parallel_step_run_again_in_a_loop_updates_results(tmp_path: Path) -> None:
    branch = ToolStep("b", lambda iteration: iteration * 10)
    loop = LoopStep("l", ParallelStep("p", [branch]), max_iterations=3)
    result = await run(tmp_path, workflow_of(loop))
    assert result.status == "completed", result.error
    assert result.context.variables == {"b": 20}
    # The last iteration's output, in results as in variables (not the first one's).
    assert result.context.results["b"] == 20
    assert result.context.results["p"] == {"b": 20}
    assert result.context.results["l"] == [{"b": 0}, {"b": 10}, {"b": 20}]
