"""The document's step types, declared in either of its two styles:

    AgentStep("welcome", welcome_agent, "Welcome new customer")            # positional
    ToolStep("validate_order").with_params_function(lambda s: {...})       # chained
    ConditionalStep("check").condition(lambda s: ...).if_true(a).if_false(b)
    ParallelStep("setup").add_branch(a).add_branch(b).with_minimum_success_count(1)

A step object only describes; durable.flow._run executes it inside a run. Every `with_*`,
`add_*`, `if_*` method returns the step, so calls chain. `describe()` is what versions a
builder workflow (durable.flow._fingerprint): everything that changes behaviour, lambdas by
their code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

from durable._durations import check_duration
from durable._errors import WorkflowDefinitionError
from durable._ids import check_id

FailurePolicy = Literal[
    "all_must_succeed", "fail_fast", "continue_on_partial_failure", "continue_on_failure"
]
FAILURE_POLICIES: tuple[str, ...] = get_args(FailurePolicy)

Predicate = Callable[[Any], Any]


class WorkflowStep:
    """What every step has: an id (unique in its workflow: it names the step in the run's
    log), a timeout, a retry count and conditions that must hold for it to run."""

    kind = "step"

    def __init__(self, step_id: str) -> None:
        self.step_id = check_id("workflow step id", step_id)
        self.timeout: float | None = None
        self.max_attempts = 1
        self.retry_delay = 1.0
        self.conditions: list[Predicate] = []

    def with_timeout(self, seconds: float) -> WorkflowStep:
        """Seconds the step may take (a tool's attempt; an agent's, a parallel's or a loop's
        whole run); past them it fails with a timeout error."""
        self.timeout = check_duration(
            f"step {self.step_id!r}: with_timeout()",
            seconds,
            positive=True,
            error=WorkflowDefinitionError,
        )
        return self

    def with_retry(
        self,
        max_retries: int | None = None,
        *,
        max_attempts: int | None = None,
        delay: float = 1.0,
    ) -> WorkflowStep:
        """`with_retry(3)` / `with_retry(max_retries=3)`: up to 3 more tries after a failure;
        `with_retry(max_attempts=3)`: 3 tries in all. `delay`: seconds before the first retry,
        doubling each time."""
        if (max_retries is None) == (max_attempts is None):
            raise WorkflowDefinitionError(
                f"step {self.step_id!r}: with_retry() takes max_retries (e.g. with_retry(3)) "
                "or max_attempts=, one of them"
            )
        attempts = max_retries + 1 if max_retries is not None else max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            given = max_retries if max_attempts is None else max_attempts
            raise WorkflowDefinitionError(
                f"step {self.step_id!r}: with_retry() needs a whole number of retries >= 0 "
                f"(max_attempts >= 1), got {given!r}"
            )
        self.max_attempts = attempts
        self.retry_delay = check_duration(
            f"step {self.step_id!r}: with_retry() delay", delay, error=WorkflowDefinitionError
        )
        return self

    def add_condition(self, condition: Predicate) -> WorkflowStep:
        """Run the step only if `condition(context)` is true (all of them, if several);
        otherwise it is skipped. The decision is recorded in the run's log."""
        self.conditions.append(_callable(self, "add_condition()", condition))
        return self

    def children(self) -> list[WorkflowStep]:
        return []

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.step_id,
            "timeout": self.timeout,
            "attempts": self.max_attempts,
            "retry_delay": self.retry_delay,
            "conditions": list(self.conditions),
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.step_id!r}>"


class ToolStep(WorkflowStep):
    """Call a tool with keyword arguments: `args`, or what `with_params_function(state)`
    returns. `tool` is a function, a Pydantic AI Tool, an app step, or a name registered with
    register_tool() / WorkflowEngine(tools=...); without one, the tool named like the step.
    The call is a step of the run: recorded once, retried per with_retry()."""

    kind = "tool"

    def __init__(
        self, step_id: str, tool: Any = None, args: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(step_id)
        self.tool: Any = tool
        self.args: dict[str, Any] = dict(args or {})
        self.params_function: Predicate | None = None

    def with_params_function(self, fn: Predicate) -> ToolStep:
        self.params_function = _callable(self, "with_params_function()", fn)
        return self

    def with_args(self, args: Mapping[str, Any]) -> ToolStep:
        self.args = dict(args)
        return self

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "tool": self.tool,
            "args": self.args,
            "params": self.params_function,
        }


class AgentStep(WorkflowStep):
    """Run an agent (a Pydantic AI agent, or a name registered with register_agent() /
    WorkflowEngine(agents=...); without one, the agent named like the step) on a message.
    Each model request and tool call of its loop is a step of the run (durable.agents)."""

    kind = "agent"

    def __init__(self, step_id: str, agent: Any = None, message: str | None = None) -> None:
        super().__init__(step_id)
        self.agent: Any = agent
        self.message = message
        self.input_function: Predicate | None = None
        self.context_function: Predicate | None = None

    def with_input(self, message: str) -> AgentStep:
        self.message = message
        return self

    def with_input_function(self, fn: Predicate) -> AgentStep:
        """The message, from the context: `lambda state: f"Complete order {state['id']}"`."""
        self.input_function = _callable(self, "with_input_function()", fn)
        return self

    def with_context_function(self, fn: Predicate) -> AgentStep:
        """What the agent gets as its dependencies (`RunContext.deps` in its tools and
        instructions), from the context."""
        self.context_function = _callable(self, "with_context_function()", fn)
        return self

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "agent": self.agent,
            "message": self.message,
            "input": self.input_function,
            "context": self.context_function,
        }


class ConditionalStep(WorkflowStep):
    """Run `true_step` if `condition(context)` holds, else `false_step` (either may be left
    out: then nothing runs and the step is skipped). The decision is recorded in the log."""

    kind = "conditional"

    def __init__(
        self,
        step_id: str,
        condition: Predicate | None = None,
        true_step: WorkflowStep | None = None,
        false_step: WorkflowStep | None = None,
    ) -> None:
        super().__init__(step_id)
        self.predicate: Predicate | None = None
        if condition is not None:
            self.condition(condition)
        self.true_step = _step(self, "true_step", true_step)
        self.false_step = _step(self, "false_step", false_step)

    def condition(self, fn: Predicate) -> ConditionalStep:
        self.predicate = _callable(self, "condition()", fn)
        return self

    def if_true(self, step: WorkflowStep) -> ConditionalStep:
        self.true_step = _step(self, "if_true()", step)
        return self

    def if_false(self, step: WorkflowStep) -> ConditionalStep:
        self.false_step = _step(self, "if_false()", step)
        return self

    def children(self) -> list[WorkflowStep]:
        return [s for s in (self.true_step, self.false_step) if s is not None]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "if": self.predicate,
            "then": self.true_step.describe() if self.true_step else None,
            "else": self.false_step.describe() if self.false_step else None,
        }


class ParallelStep(WorkflowStep):
    """Run branches at once. Failure policies:

    - "all_must_succeed" (the default): wait for every branch; the step fails if one did;
    - "fail_fast": fail at the first failed branch, cancelling the others;
    - "continue_on_partial_failure": wait for every branch; succeed if at least
      `with_minimum_success_count(n)` of them did (default 1);
    - "continue_on_failure": wait for every branch; always succeed.

    `wait_for_all=False`: done as soon as the minimum success count is reached (default 1);
    the branches still running are cancelled. Each branch starts from the context as it was
    when the parallel step began (branches don't see each other's outputs); their outputs
    are merged into it afterwards, in branch order. The step's output maps each successful
    branch's id to its output."""

    kind = "parallel"

    def __init__(
        self,
        step_id: str,
        steps: Sequence[WorkflowStep] | None = None,
        wait_for_all: bool = True,
    ) -> None:
        super().__init__(step_id)
        self.branches: list[WorkflowStep] = []
        for branch in steps or ():
            self.add_branch(branch)
        self.wait_for_all = bool(wait_for_all)
        self.failure_policy: FailurePolicy = "all_must_succeed"
        self.minimum_success_count: int | None = None

    def add_branch(self, step: WorkflowStep) -> ParallelStep:
        branch = _step(self, "add_branch()", step)
        assert branch is not None
        self.branches.append(branch)
        return self

    def with_failure_policy(self, policy: str) -> ParallelStep:
        if policy not in FAILURE_POLICIES:
            raise WorkflowDefinitionError(
                f"step {self.step_id!r}: unknown failure policy {policy!r}; use one of "
                + ", ".join(map(repr, FAILURE_POLICIES))
            )
        self.failure_policy = policy  # type: ignore[assignment]
        return self

    def with_minimum_success_count(self, count: int) -> ParallelStep:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise WorkflowDefinitionError(
                f"step {self.step_id!r}: with_minimum_success_count() needs an int >= 1, "
                f"got {count!r}"
            )
        self.minimum_success_count = count
        return self

    def children(self) -> list[WorkflowStep]:
        return list(self.branches)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "branches": [b.describe() for b in self.branches],
            "wait_for_all": self.wait_for_all,
            "policy": self.failure_policy,
            "min_success": self.minimum_success_count,
        }


class LoopStep(WorkflowStep):
    """Run `step` again and again while `condition(context, iteration)` holds (iteration
    counts from 0; a one-argument condition gets only the context), at most `max_iterations`
    times. A tool in the loop can take an `iteration` parameter to know which one it is. The
    output is the list of the iterations' outputs; a failed iteration fails the loop."""

    kind = "loop"

    def __init__(
        self,
        step_id: str,
        step: WorkflowStep,
        condition: Callable[..., Any] | None = None,
        max_iterations: int = 10,
    ) -> None:
        super().__init__(step_id)
        body = _step(self, "step", step)
        if body is None:
            raise WorkflowDefinitionError(f"loop {step_id!r} needs a step to repeat")
        self.body: WorkflowStep = body
        self.condition = None if condition is None else _callable(self, "condition", condition)
        if (
            isinstance(max_iterations, bool)
            or not isinstance(max_iterations, int)
            or (max_iterations < 1)
        ):
            raise WorkflowDefinitionError(
                f"loop {step_id!r}: max_iterations must be an int >= 1, got {max_iterations!r}"
            )
        self.max_iterations = max_iterations
        self.condition_takes_iteration = self.condition is not None and _arity(self.condition) >= 2

    def children(self) -> list[WorkflowStep]:
        return [self.body]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "body": self.body.describe(),
            "while": self.condition,
            "max_iterations": self.max_iterations,
        }


def _callable(step: WorkflowStep, where: str, fn: Any) -> Any:
    if not callable(fn):
        raise WorkflowDefinitionError(
            f"step {step.step_id!r}: {where} needs a function (e.g. a lambda over the "
            f"context), got {type(fn).__name__}"
        )
    return fn


def _step(owner: WorkflowStep, where: str, step: Any) -> WorkflowStep | None:
    if step is None or isinstance(step, WorkflowStep):
        return step
    raise WorkflowDefinitionError(
        f"step {owner.step_id!r}: {where} needs a step (AgentStep, ToolStep, ...), got "
        f"{type(step).__name__}"
    )


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def walk(steps: Sequence[WorkflowStep]) -> list[WorkflowStep]:
    """Every step, nested ones included, depth first."""
    out: list[WorkflowStep] = []
    for step in steps:
        out.append(step)
        out.extend(walk(step.children()))
    return out
