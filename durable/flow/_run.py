"""Runs a builder workflow inside a durable run: the interpreter is the workflow's code.

Like Temporal's DSL sample, the workflow's steps are data and one deterministic workflow
function walks them: a ToolStep is a step of the run (recorded once, retried by the engine),
an AgentStep a durable agent run (each model request and tool call a step), a parallel step
tasks raced with ctx.as_completed (their completion order recorded), a timeout a durable
ctx.wait. Every decision a lambda makes (a condition, a branch, a loop's next turn, an error
handler's answer) is recorded as a marker, so a replay takes the path the run took even if
the lambda reads the world or has changed since. After each step, nested ones included, a
"flow.step" marker records its StepResult: what streams read and WorkflowResult is made of.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from durable._errors import DurableError, NonDeterminismError, StepFailed
from durable.flow._context import WorkflowContext
from durable.flow._parallel import run_parallel
from durable.flow._plan import Plan
from durable.flow._results import StepResult, composite, elapsed_ms, timed
from durable.flow._steps import (
    AgentStep,
    ConditionalStep,
    LoopStep,
    ParallelStep,
    ToolStep,
    WorkflowStep,
)
from durable.runtime._context import Context, WorkflowRuntime
from durable.runtime._registry import RetryPolicy, Step, StepDef

STEP_MARKER = "flow.step"
END_MARKER = "flow.end"
# How often a workflow-level error handler may answer "retry" for one step.
MAX_HANDLER_RETRIES = 3
COMPOSITES = frozenset({"parallel", "conditional", "loop"})


class WorkflowFailedError(DurableError):
    """A builder workflow stopped at a step that failed for good."""


class StepError(Exception):
    """What a workflow-level error handler gets as `error`: the failed step's error text."""


async def run_flow(ctx: Context, executor: WorkflowRuntime, plan: Plan, payload: Any) -> Any:
    context = WorkflowContext.from_payload(payload)
    flow = _Flow(ctx, executor, plan)
    results: list[StepResult] = []
    error: str | None = None
    for step in plan.steps:
        result = await flow.execute(step, context, None, None)
        results.append(result)
        if result.is_failure and not _continued(result):
            error = f"step {step.step_id!r} failed: {result.error}"
            break
    status = "failed" if error else "completed"
    created = executor.state.created_at
    end = executor.marker(
        END_MARKER,
        lambda: {
            "status": status,
            "error": error,
            "execution_time_ms": elapsed_ms(created, time.time()),
            "context": context.to_payload(),
        },
    )
    if error is not None:
        raise WorkflowFailedError(f"workflow {plan.name!r} failed: {error}")
    return {
        "status": "completed",
        "execution_time_ms": end["execution_time_ms"],
        "steps": [r.to_payload() for r in results],
        "variables": context.variables,
    }


def _continued(result: StepResult) -> bool:
    return bool(result.handling and result.handling.get("continued"))


class _Flow:
    def __init__(self, ctx: Context, executor: WorkflowRuntime, plan: Plan) -> None:
        self.ctx = ctx
        self.executor = executor
        self.plan = plan

    # -- one step, whatever its kind ------------------------------------------------------

    async def execute(
        self, step: WorkflowStep, context: WorkflowContext, parent: str | None, it: int | None
    ) -> StepResult:
        if step.conditions:
            go, why = self._decide(
                "flow.condition", lambda: all(bool(c(context)) for c in step.conditions)
            )
            if why is not None:
                return self._finish(
                    self._failed(step, parent, f"its condition raised {why}"), context
                )
            if not go:
                return self._finish(
                    StepResult(step.step_id, "skipped", step_type=step.kind, parent_id=parent),
                    context,
                )
        if self.plan.logger is not None and not self.executor.is_replaying:
            self.plan.logger.log_step_start(step.step_id, context)
        result = await self._attempts(step, context, parent, it)
        if result.is_failure:
            result = await self._handle(step, result, context, parent, it)
        return self._finish(result, context)

    def _finish(self, result: StepResult, context: WorkflowContext) -> StepResult:
        live = not self.executor.is_replaying
        recorded = self.executor.marker(STEP_MARKER, result.to_payload)
        result = StepResult.from_payload(recorded)
        if result.is_success:
            if result.step_type in COMPOSITES:  # their children merged their outputs already
                context.results[result.step_id] = result.output
            else:
                context.record(result.step_id, result.output)
        logger = self.plan.logger
        if logger is not None and live:
            if result.is_failure:
                logger.log_step_error(result.step_id, result.error or "", context)
            else:
                logger.log_step_complete(result.step_id, result, result.execution_time_ms)
        return result

    async def _attempts(
        self, step: WorkflowStep, context: WorkflowContext, parent: str | None, it: int | None
    ) -> StepResult:
        if isinstance(step, ToolStep):  # the engine retries a tool's step itself
            return await self._once(step, context, parent, it)
        attempt = 1
        while True:
            body = self._once(step, context, parent, it)
            # A parallel step bounds itself: at its timeout the branches done by then still
            # count for its failure policy (3 of 4 done is enough for "at least 3").
            bounded = body if isinstance(step, ParallelStep) else self._bounded(step, body, parent)
            result = await bounded
            if not result.is_failure or attempt >= step.max_attempts:
                return result
            await self.ctx.sleep(step.retry_delay * 2 ** (attempt - 1))
            attempt += 1

    async def _bounded(
        self, step: WorkflowStep, body: Awaitable[StepResult], parent: str | None
    ) -> StepResult:
        """The step's whole execution within its timeout (a durable one)."""
        if step.timeout is None:
            return await body
        task = asyncio.ensure_future(body)
        try:
            done, _ = await self.ctx.wait([task], timeout=step.timeout)
        except BaseException:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return self._failed(step, parent, f"timed out after {step.timeout:g}s")

    async def _once(
        self, step: WorkflowStep, context: WorkflowContext, parent: str | None, it: int | None
    ) -> StepResult:
        try:
            if isinstance(step, ToolStep):
                return await self._tool(step, context, parent, it)
            if isinstance(step, AgentStep):
                return await self._agent(step, context, parent)
            if isinstance(step, ConditionalStep):
                return await self._conditional(step, context, parent, it)
            if isinstance(step, ParallelStep):
                return await self._parallel(step, context, parent, it)
            if isinstance(step, LoopStep):
                return await self._loop(step, context, parent)
        except NonDeterminismError:
            raise
        except StepFailed as exc:  # an agent's tool or model request, out of attempts
            return self._failed(step, parent, str(exc.error))
        except Exception as exc:  # a lambda, an agent's run, a tool's arguments
            return self._failed(step, parent, f"{type(exc).__name__}: {exc}")
        raise TypeError(f"step {step.step_id!r}: unknown step type {type(step).__name__}")

    # -- leaves ---------------------------------------------------------------------------

    async def _tool(
        self, step: ToolStep, context: WorkflowContext, parent: str | None, it: int | None
    ) -> StepResult:
        tool = self.plan.tool(step)
        params = step.params_function(context) if step.params_function else dict(step.args)
        if not isinstance(params, Mapping):
            raise TypeError(
                f"the params of step {step.step_id!r} must be a dict, got {type(params).__name__}"
            )
        kwargs = dict(params)
        if it is not None and "iteration" in tool.params:
            kwargs.setdefault("iteration", it)
        if "state" in tool.params:
            kwargs.setdefault("state", dict(context))
        unknown = sorted(k for k in kwargs if k not in tool.params)
        if unknown and "*" not in tool.params:
            raise TypeError(
                f"tool {tool.name!r} takes no parameter(s) {', '.join(map(repr, unknown))} "
                f"(it takes {', '.join(sorted(tool.params)) or 'none'})"
            )
        definition = StepDef(
            name=step.step_id,
            fn=tool.fn,
            is_async=inspect.iscoroutinefunction(tool.fn),
            retry=RetryPolicy(max_attempts=step.max_attempts, initial_delay=step.retry_delay),
            timeout=step.timeout,
            return_type=Any,
            max_crashes=self.plan.max_crashes,
        )
        pos = self.executor.positions_used
        status: Any = "success"
        output: Any = None
        error: str | None = None
        try:
            output = await Step(definition)(**kwargs)
        except StepFailed as exc:  # out of attempts: its last error, as the log has it
            status, error = "failed", str(exc.error)
        record = self.executor.state.steps.get(pos)
        span = (record.started_at, record.finished_at) if record else (None, None)
        return timed(step, parent, status, output, error, span)

    async def _agent(
        self, step: AgentStep, context: WorkflowContext, parent: str | None
    ) -> StepResult:
        agent = self.plan.agent(step)
        prompt = step.input_function(context) if step.input_function else step.message
        kwargs: dict[str, Any] = {}
        if step.context_function is not None:
            kwargs["deps"] = step.context_function(context)
        first = self.executor.positions_used
        result = await agent.run(prompt, **kwargs)
        from pydantic_core import to_jsonable_python

        output = to_jsonable_python(result.output)
        return timed(step, parent, "success", output, None, self._span(first, f"{agent.name}."))

    def _span(self, first: int, prefix: str) -> tuple[float | None, float | None]:
        """When the steps this one took (from position `first`, named `prefix`...) ran."""
        steps = [
            s
            for p, s in self.executor.state.steps.items()
            if p >= first and s.name.startswith(prefix)
        ]
        starts = [s.started_at for s in steps if s.started_at is not None]
        ends = [s.finished_at for s in steps if s.finished_at is not None]
        return (min(starts) if starts else None, max(ends) if ends else None)

    # -- composites -----------------------------------------------------------------------

    async def _conditional(
        self, step: ConditionalStep, context: WorkflowContext, parent: str | None, it: int | None
    ) -> StepResult:
        assert step.predicate is not None
        predicate = step.predicate
        value, why = self._decide("flow.branch", lambda: bool(predicate(context)))
        if why is not None:
            return self._failed(step, parent, f"its condition raised {why}")
        branch = step.true_step if value else step.false_step
        handling = {"branch": bool(value), "ran": branch.step_id if branch else None}
        if branch is None:
            return StepResult(
                step.step_id, "skipped", step_type=step.kind, parent_id=parent, handling=handling
            )
        inner = await self.execute(branch, context, step.step_id, it)
        return composite(step, parent, inner.status, inner.output, inner.error, [inner], handling)

    async def _loop(
        self, step: LoopStep, context: WorkflowContext, parent: str | None
    ) -> StepResult:
        outputs: list[Any] = []
        ran: list[StepResult] = []
        condition = step.condition
        for i in range(step.max_iterations):
            if condition is not None:
                args = (context, i) if step.condition_takes_iteration else (context,)
                go, why = self._decide("flow.loop", functools.partial(_truth, condition, args))
                if why is not None:
                    return self._failed(step, parent, f"its condition raised {why} (iteration {i})")
                if not go:
                    break
            inner = await self.execute(step.body, context, step.step_id, i)
            ran.append(inner)
            if inner.is_failure:
                return composite(
                    step,
                    parent,
                    "failed",
                    outputs,
                    f"iteration {i} failed: {inner.error}",
                    ran,
                    {"iterations": len(ran)},
                )
            outputs.append(inner.output)
        return composite(step, parent, "success", outputs, None, ran, {"iterations": len(ran)})

    async def _parallel(
        self, step: ParallelStep, context: WorkflowContext, parent: str | None, it: int | None
    ) -> StepResult:
        return await run_parallel(self.ctx, self.execute, step, context, parent, it)

    # -- failures and their handlers -------------------------------------------------------

    async def _handle(
        self,
        step: WorkflowStep,
        result: StepResult,
        context: WorkflowContext,
        parent: str | None,
        it: int | None,
    ) -> StepResult:
        handler = self.plan.step_handlers.get(step.step_id)
        if handler is not None:
            replacement = handler(result, context)
            now = replacement.step_id if isinstance(replacement, WorkflowStep) else None
            taken = self.executor.marker("flow.handler", lambda: {"step": now})
            if taken.get("step") != now:
                # Only the step's id is recorded: a handler called again on a resumed run
                # must return the same step, or the run can't go on the path it took.
                raise NonDeterminismError(
                    self.executor.state.run_id,
                    self.executor.positions_used - 1,
                    f"the error handler of step {step.step_id!r} returning step "
                    f"{taken.get('step')!r}",
                    "it returning " + ("None" if now is None else f"step {now!r}"),
                    _where(handler),
                )
            if isinstance(replacement, WorkflowStep):
                inner = await self.execute(replacement, context, step.step_id, it)
                handling: dict[str, Any] = {
                    "action": "replaced",
                    "by": inner.step_id,
                    "error": result.error,
                }
                if _continued(inner):  # the fallback failed too: the workflow's handler
                    handling["continued"] = True  # said to go on, so the step goes on
                return replace(
                    inner,
                    step_id=step.step_id,
                    step_type=step.kind,
                    parent_id=parent,
                    output=inner.output,
                    handling=handling,
                )
        wf_handler = self.plan.workflow_handler
        retries = 0
        while wf_handler is not None and result.is_failure:
            failure = StepError(result.error)
            answer, why = self._decide(
                "flow.on_error", functools.partial(_answer, wf_handler, (failure, step, context))
            )
            action = dict(answer) if isinstance(answer, dict) else {"action": "fail"}
            if why is not None:
                action = {"action": "fail", "handler_error": why}
            verb = str(action.get("action", "fail"))
            if verb == "retry" and retries < MAX_HANDLER_RETRIES:
                retries += 1
                result = await self._attempts(step, context, parent, it)
                if not result.is_failure:
                    return replace(result, handling={**action, "retries": retries})
                continue
            if verb in ("continue", "skip", "ignore"):
                action["continued"] = True
            return replace(result, handling={**action, "retries": retries})
        return result

    # -- helpers ----------------------------------------------------------------------------

    def _decide(self, kind: str, decide: Callable[[], Any]) -> tuple[Any, str | None]:
        """A lambda's answer, recorded: (value, None), or (None, why) if it raised."""

        def produce() -> dict[str, Any]:
            try:
                return {"value": decide()}
            except Exception as exc:
                return {"error": f"{type(exc).__name__}: {exc}"}

        recorded = self.executor.marker(kind, produce)
        return recorded.get("value"), recorded.get("error")

    def _failed(self, step: WorkflowStep, parent: str | None, error: str) -> StepResult:
        return StepResult(
            step.step_id, "failed", error=error, step_type=step.kind, parent_id=parent
        )


def _where(fn: Any) -> str:
    code = getattr(fn, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(fn)


def _truth(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    return bool(fn(*args))


def _answer(handler: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    value = handler(*args)
    if isinstance(value, WorkflowStep):
        raise TypeError(
            "a workflow-level error handler returns a dict such as "
            "{'action': 'retry' | 'fail' | 'continue'}, not a step"
        )
    return value
