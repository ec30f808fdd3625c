"""A ParallelStep's branches, raced durably.

Each branch is a task working on its own copy of the context. The parent issues one command
while they run: a ctx.wait for all of them (with the step's timeout), recorded with the order
they finished in. An early exit (fail_fast's first failure, wait_for_all=False's minimum
success count) is decided by the branch that reaches it, right after its result, and it
cancels the branches still running: the parent takes no position meanwhile, so on a replay
(or the worker that resumes the run after a crash) the branches' commands take the positions
they took live. (A parent taking a position per finished branch, as ctx.as_completed does,
raced the branches' own commands for positions: a recovery found the parent's next select
where a branch's result marker had been.) The successful branches' changes to the context
are then merged into it in branch order, not finishing order, so the result never depends on
timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from durable.flow._context import WorkflowContext
from durable.flow._results import StepResult, composite
from durable.flow._steps import ParallelStep, WorkflowStep
from durable.runtime._context import Context

# _run's _Flow.execute: one step (and its nested ones), to its StepResult.
Execute = Callable[[WorkflowStep, WorkflowContext, str | None, int | None], Awaitable[StepResult]]


async def run_parallel(
    ctx: Context,
    execute: Execute,
    step: ParallelStep,
    context: WorkflowContext,
    parent: str | None,
    it: int | None,
) -> StepResult:
    copies = [context.snapshot() for _ in step.branches]
    need = _needed(step)
    ended: dict[int, StepResult] = {}
    tasks: list[asyncio.Future[StepResult]] = []

    async def run_branch(index: int) -> StepResult:
        result = await execute(step.branches[index], copies[index], step.step_id, it)
        ended[index] = result
        ok = sum(1 for r in ended.values() if r.is_success)
        if (step.failure_policy == "fail_fast" and result.is_failure) or (
            not step.wait_for_all and ok >= need
        ):
            for other in tasks:  # the early exit: the others are not needed any more
                if not other.done() and other is not asyncio.current_task():
                    other.cancel()
        return result

    tasks.extend(asyncio.ensure_future(run_branch(i)) for i in range(len(step.branches)))
    try:
        _done, pending = await ctx.wait(
            tasks, return_when=asyncio.ALL_COMPLETED, timeout=step.timeout
        )
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    timed_out = bool(pending)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    before = dict(context.variables)
    before_results = dict(context.results)
    outputs: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for index, branch in enumerate(step.branches):
        result = ended.get(index)
        if result is None:
            why = f"timed out after {step.timeout:g}s" if timed_out else "cancelled"
            failed[branch.step_id] = why
        elif result.is_success:
            outputs[branch.step_id] = result.output
            _merge(context, copies[index], before, before_results)
        elif result.is_failure:
            failed[branch.step_id] = result.error or "failed"
    ok = _succeeded(step, len(outputs), failed, timed_out, need)
    handling: dict[str, Any] = {
        "policy": step.failure_policy,
        "succeeded": len(outputs),
        "failed": failed,
    }
    error = None
    if failed:
        error = f"{len(failed)} of {len(step.branches)} branches failed: " + "; ".join(
            f"{k}: {v}" for k, v in failed.items()
        )
    return composite(
        step,
        parent,
        "success" if ok else "failed",
        outputs,
        None if ok else error,
        list(ended.values()),
        handling,
    )


def _needed(step: ParallelStep) -> int:
    if step.minimum_success_count is not None:
        return min(step.minimum_success_count, len(step.branches))
    if step.failure_policy in ("continue_on_partial_failure", "continue_on_failure"):
        return 1
    return len(step.branches) if step.wait_for_all else 1


def _succeeded(
    step: ParallelStep, succeeded: int, failed: dict[str, str], timed_out: bool, need: int
) -> bool:
    if step.failure_policy == "continue_on_failure":
        return True
    if step.failure_policy == "continue_on_partial_failure" or not step.wait_for_all:
        return succeeded >= need
    if step.minimum_success_count is not None and step.failure_policy != "fail_fast":
        return succeeded >= need
    return not failed and not timed_out


def _merge(
    context: WorkflowContext,
    copy: WorkflowContext,
    before: dict[str, Any],
    before_results: dict[str, Any],
) -> None:
    """What the branch changed in its copy (a value that is not the one it started from),
    results as variables: a step run again (in a loop) replaces its earlier output."""
    for key, value in copy.variables.items():
        if key not in before or before[key] is not value:
            context.variables[key] = value
    for key, value in copy.results.items():
        if key not in before_results or before_results[key] is not value:
            context.results[key] = value
