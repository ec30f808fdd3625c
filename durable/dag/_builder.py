"""The Python DAG builder of the jsrun workflow document (seed 000), on the one model.

    flow = app.dag("my_workflow", api={"fetch_data": fetch_data}, config={"multiplier": 2})

    @flow.do("fetch_a")
    async def fetch_a():
        '''return await fetch_data(ctx.event.source_a);'''

    @flow.do("combine", depends=[fetch_a, fetch_b])
    async def combine():
        '''return [...deps.fetch_a, ...deps.fetch_b];'''

A step's JavaScript is the decorated function's docstring (or `code=`); `deps` holds the
dependencies' results by step name, `ctx` is {event: the run's input, config, run_id, step};
each `api` function is callable from the JavaScript (sync or async, run in this process).
The decorated function itself is never called: it only carries the code.

Queues, as a YAML definition's `queues:` / `queue:` / a step's `queue:` say them:

    flow = app.dag("mail", queues={"emails": {"concurrency": 1}}, queue="batch")

    @flow.do("send", depends=[prep], queue="emails", matrix={"to": ["a", "b"]})

`queues=` takes app.queue's limits and is checked here, with the YAML loader's checks
(_queue_keys); whether each queue used is declared (here or by app.queue) is checked when the
definition is registered (Registry.add_dag), as for a file.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ._model import DagDefinition, DagStep, Location, Loop, RetryPolicy, TriggerRule
from ._problems import DagDefinitionError, Problem
from ._program import DagProgram
from ._queue_keys import check_queue_name, check_queues
from ._source import LineMap
from ._validate import validate_definition


class StepRef:
    """What `@flow.do(...)` returns: a handle naming the step, for other steps' `depends`."""

    def __init__(self, step_id: str, fn: Callable[..., Any] | None) -> None:
        self.step_id = step_id
        self.__wrapped__ = fn
        self.__name__ = step_id

    def __repr__(self) -> str:
        return f"<DAG step {self.step_id!r}>"


class DagBuilder:
    def __init__(
        self,
        name: str,
        *,
        version: str = "1",
        api: Mapping[str, Callable[..., Any]] | None = None,
        config: Mapping[str, Any] | None = None,
        parallelism: int | None = None,
        description: str | None = None,
        queues: Mapping[str, Mapping[str, Any] | None] | None = None,
        queue: str | None = None,
    ) -> None:
        self.name = name
        self.version = str(version)
        self.api = dict(api or {})
        self.config = dict(config or {})
        self.parallelism = parallelism
        self.description = description
        self._steps: list[DagStep] = []
        # Checked now, where the user wrote them, as a YAML file's `queues:` and `queue:`.
        here = _user_frame()
        lines: LineMap = {(): here.line} if here.line is not None else {}
        self.queues, problems = check_queues(
            queues, camel=False, file=here.file, lines=lines, at=("queues",), python=True
        )
        problems += check_queue_name(
            queue, "the workflow", file=here.file, lines=lines, at=("queue",)
        )
        if problems:
            raise DagDefinitionError(problems)
        self.queue = queue

    def do(
        self,
        name: str,
        depends: Sequence[StepRef | str] | None = None,
        *,
        code: str | None = None,
        retries: int = 0,
        retry_delay_ms: int = 1000,
        timeout: float | None = None,
        trigger_rule: TriggerRule = "all_success",
        min_success: int | None = None,
        condition: str | None = None,
        matrix: Mapping[str, Sequence[Any]] | None = None,
        queue: str | None = None,
    ) -> Callable[[Callable[..., Any]], StepRef]:
        """Declare a JavaScript step: decorate a function whose docstring is the code.
        `matrix` fans it out over the combinations of its values (the code sees `matrix`);
        `queue`: each instance runs as a child run admitted by that queue (declared in
        `queues=` or with app.queue)."""

        def decorator(fn: Callable[..., Any]) -> StepRef:
            body = code if code is not None else fn.__doc__
            if not body or not body.strip():
                raise DagDefinitionError(
                    [
                        Problem(
                            f"step {name!r} has no JavaScript: give the function a docstring "
                            "or pass code=...",
                            _file(fn),
                            _line(fn),
                        )
                    ]
                )
            location = Location(file=_file(fn), line=_line(fn), path=f"step {name!r}")
            self._steps.append(
                DagStep(
                    id=name,
                    kind="javascript",
                    code=textwrap.dedent(body).strip(),
                    depends_on=tuple(_ref(d) for d in depends or ()),
                    trigger_rule=trigger_rule,
                    min_success=min_success,
                    retry=RetryPolicy(max_attempts=retries + 1, initial_delay_ms=retry_delay_ms),
                    timeout_seconds=timeout,
                    condition=condition,
                    matrix=_matrix(name, matrix, location),
                    queue=queue,
                    location=location,
                )
            )
            return StepRef(name, fn)

        return decorator

    def js(
        self,
        name: str,
        code: str,
        depends: Sequence[StepRef | str] | None = None,
        *,
        matrix: Mapping[str, Sequence[Any]] | None = None,
        queue: str | None = None,
    ) -> StepRef:
        """Declare a JavaScript step from a string (`matrix`, `queue`: as do() takes them)."""
        # Problems should point at the js() call, not at the placeholder function.
        where = _caller(name)
        _matrix(name, matrix, where)
        ref = self.do(name, depends, code=code, matrix=matrix, queue=queue)(_no_function)
        self._steps[-1] = msgspec.structs.replace(self._steps[-1], location=where)
        return ref

    def loop(
        self,
        name: str,
        body: Sequence[StepRef | str],
        *,
        until: str,
        max_iterations: int,
        depends: Sequence[StepRef | str] | None = None,
    ) -> StepRef:
        """Declare a loop over a sub-graph: the `body` steps (declared with do()/js(), their
        `depends` only among themselves) run once per iteration until the JavaScript
        expression `until` holds, at most `max_iterations` times. Other steps depend on the
        returned ref, never on the body's steps."""
        self._steps.append(
            DagStep(
                id=name,
                depends_on=tuple(_ref(d) for d in depends or ()),
                loop=Loop(until=until, max_iterations=max_iterations, body=tuple(map(_ref, body))),
                location=_caller(name),
            )
        )
        return StepRef(name, None)

    def definition(self) -> DagDefinition:
        frame = self._steps[0].location if self._steps else Location()
        return validate_definition(
            DagDefinition(
                name=self.name,
                version=self.version,
                description=self.description,
                steps=tuple(self._steps),
                parallelism=self.parallelism,
                config=self.config,
                queues=self.queues,
                queue=self.queue,
                source=Location(file=frame.file, line=frame.line),
            )
        )

    def program(self) -> DagProgram:
        return DagProgram(self.definition(), functions=self.api)


def _no_function() -> None:
    """Placeholder carrier for js(): the code is given as a string."""


def _caller(name: str) -> Location:
    """Where the user's code called the builder method that called this."""
    here = inspect.currentframe()
    frame = here.f_back.f_back if here is not None and here.f_back is not None else None
    if frame is None:
        return Location(path=f"step {name!r}")
    return Location(file=frame.f_code.co_filename, line=frame.f_lineno, path=f"step {name!r}")


def _user_frame() -> Location:
    """Where the user's code called the builder (through app.dag or not): the first frame
    outside durable/ and sdk/."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename.startswith(_ENGINE_DIRS):
        frame = frame.f_back
    if frame is None:
        return Location()
    return Location(file=frame.f_code.co_filename, line=frame.f_lineno)


# durable/ (this file is in durable/dag/) and sdk/: the engine's own frames.
_ENGINE_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), d)
    + os.sep
    for d in ("durable", "sdk")
)


def _matrix(
    name: str, matrix: Mapping[str, Sequence[Any]] | None, location: Location
) -> dict[str, tuple[Any, ...]]:
    """The step's matrix as the model holds it; each key needs a non-empty list of values
    (what a YAML or JSON file's `matrix:` must hold too)."""
    values: dict[str, tuple[Any, ...]] = {}
    problems = []
    for key, given in (matrix or {}).items():
        if isinstance(given, str | bytes) or not isinstance(given, Sequence) or not given:
            problems.append(
                Problem(
                    f"step {name!r}: matrix {key!r} must be a non-empty list of values, "
                    f"e.g. matrix={{{key!r}: [1, 2, 3]}}, not {given!r}",
                    location.file,
                    location.line,
                    f"step {name!r}.matrix.{key}",
                )
            )
            continue
        values[str(key)] = tuple(given)
    if problems:
        raise DagDefinitionError(problems)
    return values


def _ref(dep: StepRef | str) -> str:
    return dep if isinstance(dep, str) else dep.step_id


def _file(fn: Callable[..., Any]) -> str | None:
    try:
        return inspect.getsourcefile(fn)
    except TypeError:
        return None


def _line(fn: Callable[..., Any]) -> int | None:
    code = getattr(fn, "__code__", None)
    return code.co_firstlineno if code is not None else None
