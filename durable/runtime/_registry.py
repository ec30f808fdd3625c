"""What a worker knows how to run: workflows by (name, version), and steps."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import os
import sys
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from durable._durations import check_duration
from durable._errors import UnknownWorkflowError, WorkflowDefinitionError
from durable._ids import check_id
from durable._policy import CodePolicy
from durable.runtime._context import current_executor

if TYPE_CHECKING:
    from durable.dag._model import DagDefinition
    from durable.dag._problems import Problem
    from durable.dag._program import DagProgram
    from durable.queues._spec import QueueSpec
    from durable.schedules._spec import ScheduleSpec

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a failed step is tried again.

    The delay before attempt n+1 is min(initial_delay * backoff**(n-1), max_delay) seconds,
    or min(initial_delay * n, max_delay) if `linear`. Errors of a type in non_retryable
    (matched by isinstance) fail the step at once.
    """

    max_attempts: int = 1
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 60.0
    non_retryable: tuple[type[BaseException], ...] = ()
    linear: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise WorkflowDefinitionError(
                f"RetryPolicy.max_attempts must be >= 1, not {self.max_attempts}"
            )
        for name in ("initial_delay", "max_delay"):
            check_duration(
                f"RetryPolicy.{name}", getattr(self, name), error=WorkflowDefinitionError
            )
        if not math.isfinite(self.backoff) or self.backoff < 1:
            raise WorkflowDefinitionError(
                f"RetryPolicy.backoff must be a finite number >= 1, got {self.backoff!r}"
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if self.linear:
            return float(min(self.initial_delay * attempt, self.max_delay))
        return float(min(self.initial_delay * self.backoff ** (attempt - 1), self.max_delay))


NO_RETRY = RetryPolicy()
# How many times a step may kill its worker process before it fails (durable.StepInterrupted).
DEFAULT_MAX_CRASHES = 10


def check_max_crashes(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkflowDefinitionError(f"{name} must be an int >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class StepDef:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    retry: RetryPolicy
    timeout: float | None
    return_type: Any
    # Interrupted attempts (the process died during them) before the step fails for good.
    max_crashes: int = DEFAULT_MAX_CRASHES


class Step(Generic[P, R]):
    """A step function. Inside a workflow a call is recorded in the log (and answered from it on
    replay); outside a workflow it is a plain call of the function.

    The position is taken at call time, synchronously: `asyncio.gather(a(), b())` numbers a
    before b on every execution, whatever order the steps then finish in.
    """

    def __init__(self, definition: StepDef) -> None:
        self.definition = definition
        self.fn = definition.fn
        self.__name__ = definition.name
        self.__doc__ = definition.fn.__doc__
        self.__wrapped__ = definition.fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        executor = current_executor.get()
        if executor is None:
            result: Awaitable[R] = self.fn(*args, **kwargs)
            return result
        return executor.call_step(self.definition, args, kwargs)

    def __repr__(self) -> str:
        return f"<durable step {self.definition.name!r}>"


@dataclass(frozen=True, slots=True)
class WorkflowDef:
    name: str
    version: str
    fn: Callable[..., Awaitable[Any]]
    takes_input: bool
    input_type: Any
    return_type: Any
    fingerprint: str
    source: str  # "file:line" of the definition, for messages
    dag: DagProgram | None = None  # set for DAG workflows: executed by the DAG interpreter


class Registry:
    def __init__(self) -> None:
        self._workflows: dict[tuple[str, str], WorkflowDef] = {}
        self._by_fn: dict[Callable[..., Any], WorkflowDef] = {}
        self._steps: dict[str, StepDef] = {}
        # DAG actions users add (app.register_action): name -> fn(params, context)
        self.actions: dict[str, Callable[..., Any]] = {}
        # Which `function:` references and environment variables DAGs may reach.
        self.policy = CodePolicy()
        # The default of @app.step(max_crashes=...): App(max_step_crashes=...).
        self.max_step_crashes = DEFAULT_MAX_CRASHES
        # Cron schedules this process declares (and, when it runs a worker, fires), by name.
        self.schedules: dict[str, ScheduleSpec] = {}
        # Queues this process declares (written to the store when its engine opens), by name.
        self.queues: dict[str, QueueSpec] = {}

    def add_step(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        max_crashes: int | None = None,
    ) -> StepDef:
        step_name = check_id("step name", name or fn.__name__)
        if timeout is not None:
            timeout = check_duration(
                f"step {step_name!r}: timeout",
                timeout,
                positive=True,
                error=WorkflowDefinitionError,
            )
        crashes = self.max_step_crashes if max_crashes is None else max_crashes
        check_max_crashes(f"step {step_name!r}: max_crashes", crashes)
        existing = self._steps.get(step_name)
        if existing is not None and existing.fn is not fn:
            raise WorkflowDefinitionError(
                f"two different functions are registered as step {step_name!r} "
                f"({_where(existing.fn)} and {_where(fn)}); give one of them name=..."
            )
        definition = StepDef(
            name=step_name,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            retry=retry or NO_RETRY,
            timeout=timeout,
            return_type=_hints(fn).get("return", Any),
            max_crashes=crashes,
        )
        self._steps[step_name] = definition
        return definition

    def add_workflow(
        self, fn: Callable[..., Awaitable[Any]], *, name: str | None, version: str
    ) -> WorkflowDef:
        wf_name = check_id("workflow name", name or fn.__name__)
        check_id("workflow version", str(version))
        if not inspect.iscoroutinefunction(fn):
            raise WorkflowDefinitionError(
                f"workflow {wf_name!r} ({_where(fn)}) must be an async function "
                "taking (ctx) or (ctx, input)"
            )
        params = list(inspect.signature(fn).parameters.values())
        if not 1 <= len(params) <= 2:
            raise WorkflowDefinitionError(
                f"workflow {wf_name!r} ({_where(fn)}) must take (ctx) or (ctx, input), "
                f"not {len(params)} parameters"
            )
        key = (wf_name, str(version))
        if key in self._workflows:
            raise WorkflowDefinitionError(
                f"workflow {wf_name!r} version {version!r} is registered twice "
                f"({self._workflows[key].source} and {_where(fn)}); bump the version of one"
            )
        hints = _hints(fn)
        definition = WorkflowDef(
            name=wf_name,
            version=str(version),
            fn=fn,
            takes_input=len(params) == 2,
            input_type=hints.get(params[1].name, Any) if len(params) == 2 else Any,
            return_type=hints.get("return", Any),
            fingerprint=_fingerprint(fn),
            source=_where(fn),
        )
        self._workflows[key] = definition
        self._by_fn[fn] = definition
        return definition

    def add_flow(
        self, fn: Callable[..., Awaitable[Any]], *, name: str, version: str, fingerprint: str
    ) -> WorkflowDef:
        """Register a builder workflow (durable.flow): `fn(ctx, input)` interprets it, and
        `fingerprint` hashes its steps and their code (its lambdas can't be stored). The same
        workflow registered again replaces the entry (the newest closures), as a DAG does; a
        changed one under the same version is refused."""
        check_id("workflow name", name)
        check_id("workflow version", version)
        key = (name, version)
        existing = self._workflows.get(key)
        if existing is not None and existing.fingerprint != fingerprint:
            raise WorkflowDefinitionError(
                f"workflow {name!r} version {version!r} is already registered "
                f"({existing.source}) with different steps; a changed workflow registered in "
                "the same process needs a new version"
            )
        if existing is not None:
            self._by_fn.pop(existing.fn, None)
        definition = WorkflowDef(
            name=name,
            version=version,
            fn=fn,
            takes_input=True,
            input_type=Any,
            return_type=Any,
            fingerprint=fingerprint,
            source=caller_location(2),
        )
        self._workflows[key] = definition
        self._by_fn[fn] = definition
        return definition

    def add_dag(self, program: DagProgram) -> WorkflowDef:
        """Register a validated DAG definition as workflow (name, version)."""
        definition = program.definition
        check_id("workflow name", definition.name)
        check_id("workflow version", definition.version)
        refused = self.function_problems(definition)
        from durable.dag._queued import declared_queues, queued_programs

        queues, wrong = declared_queues(definition, self.queues)
        refused += wrong
        if refused:
            from durable.dag._problems import DagDefinitionError

            raise DagDefinitionError(refused)
        program = dataclasses.replace(program, policy=self.policy)
        key = (definition.name, definition.version)
        existing = self._workflows.get(key)
        fingerprint = definition.fingerprint()
        # The same definition again (the builder re-run, a CLI re-run) replaces the old
        # entry, so integration functions are the newest closures; a changed one is refused.
        if existing is not None and (existing.dag is None or existing.fingerprint != fingerprint):
            raise WorkflowDefinitionError(
                f"workflow {definition.name!r} version {definition.version!r} is already "
                f"registered ({existing.source}) with a different definition; a changed "
                "definition needs a new version"
            )
        loc = definition.source
        wf = WorkflowDef(
            name=definition.name,
            version=definition.version,
            fn=_dag_body,
            takes_input=True,
            input_type=Any,
            return_type=Any,
            fingerprint=fingerprint,
            source=f"{loc.file or '<definition>'}:{loc.line or 1}",
            dag=program,
        )
        self._workflows[key] = wf
        for queue in queues:
            self.queues[queue.name] = queue
        for sub in queued_programs(program):  # each queued step's child runs: see dag/_queued
            sub_def = sub.definition
            self._workflows[(sub_def.name, sub_def.version)] = dataclasses.replace(
                wf, name=sub_def.name, fingerprint=sub_def.fingerprint(), dag=sub
            )
        if definition.schedule is not None:
            from durable.schedules._spec import schedule_from_mapping

            spec = schedule_from_mapping(
                definition.schedule, workflow=definition.name, where=f"workflow {definition.name!r}"
            )
            self.schedules[spec.name] = spec
        return wf

    def function_problems(self, definition: DagDefinition) -> list[Problem]:
        """The `function:` references of `definition` this registry's policy refuses: one
        problem each, naming the step, its line and how to allow it. Imports nothing."""
        from durable.dag._problems import problem_at

        problems: list[Problem] = []
        for step in definition.steps:
            why = None if step.function is None else self.policy.refusal(step.function)
            if why is not None:
                problems.append(problem_at(f"step {step.id!r}: {why}", step.location, "function"))
        return problems

    def add_action(self, name: str, fn: Callable[..., Any]) -> None:
        check_id("action name", name)
        from durable.dag import BUILTIN_ACTIONS

        if name in BUILTIN_ACTIONS:
            raise WorkflowDefinitionError(f"action {name!r} is built in; choose another name")
        existing = self.actions.get(name)
        if existing is not None and existing is not fn:
            raise WorkflowDefinitionError(
                f"two different functions are registered as action {name!r} "
                f"({_where(existing)} and {_where(fn)})"
            )
        if not callable(fn):
            raise WorkflowDefinitionError(f"action {name!r} must be callable, got {fn!r}")
        self.actions[name] = fn

    def workflow(self, ref: str | Callable[..., Any], version: str | None = None) -> WorkflowDef:
        """The definition a reference names: a workflow function or a name (newest version
        unless one is given)."""
        if not isinstance(ref, str):
            found = self._by_fn.get(ref)
            if found is None:
                found = self._by_fn.get(getattr(ref, "__wrapped__", None))  # type: ignore[arg-type]
            if found is None:
                raise UnknownWorkflowError(
                    getattr(ref, "__name__", repr(ref)), version, self.names()
                )
            if version is None or found.version == version:
                return found
            ref = found.name
        if version is not None:
            wf = self._workflows.get((ref, version))
            if wf is None:
                raise UnknownWorkflowError(ref, version, self.names())
            return wf
        versions = [wf for (n, _), wf in self._workflows.items() if n == ref]
        if not versions:
            raise UnknownWorkflowError(ref, None, self.names())
        return max(versions, key=lambda wf: _version_key(wf.version))

    def get(self, name: str, version: str) -> WorkflowDef | None:
        return self._workflows.get((name, version))

    def keys(self) -> list[tuple[str, str]]:
        return list(self._workflows)

    def names(self) -> list[str]:
        return sorted(f"{n}@{v}" for n, v in self._workflows)


async def _dag_body(*_: Any) -> Any:
    raise RuntimeError("a DAG workflow is executed by the DAG interpreter, not called")


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    # "10" sorts after "9", and "1.10" after "1.9": numeric parts compare as numbers.
    parts: list[tuple[int, int | str]] = []
    for part in version.replace("-", ".").split("."):
        parts.append((1, int(part)) if part.isdigit() else (0, part))
    return tuple(parts)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: decode untyped
        return {}


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    return f"{code.co_filename}:{code.co_firstlineno}"


def _fingerprint(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = code.co_code if code is not None else repr(fn).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def caller_location(depth: int) -> str:
    """ "file:line" of the frame `depth` levels above the caller: where workflow code called us.
    Frames of the engine's own package on the way (a ctx helper calling another) are skipped,
    so the location is the user's line whichever helper the command went through."""
    frame = sys._getframe(depth + 1)
    skipped = _skipped_dirs()
    while frame.f_back is not None and frame.f_code.co_filename.startswith(skipped):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


# durable/ (this file is in durable/runtime/) and sdk/: the engine's own frames.
_ENGINE_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), d)
    + os.sep
    for d in ("durable", "sdk")
)
# Libraries whose code issues commands for the workflow (an agent's loop runs in the
# workflow): the location is the user's line that called them.
_LIBRARIES = ("pydantic_ai",)


def _skipped_dirs() -> tuple[str, ...]:
    dirs = list(_ENGINE_DIRS)
    for name in _LIBRARIES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)
