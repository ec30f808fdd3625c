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
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ._model import DagDefinition, DagStep, Location, Loop, RetryPolicy, TriggerRule
from ._problems import DagDefinitionError, Problem
from ._program import DagProgram
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
    ) -> None:
        self.name = name
        self.version = str(version)
        self.api = dict(api or {})
        self.config = dict(config or {})
        self.parallelism = parallelism
        self.description = description
        self._steps: list[DagStep] = []

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
    ) -> Callable[[Callable[..., Any]], StepRef]:
        """Declare a JavaScript step: decorate a function whose docstring is the code."""

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
                    location=Location(file=_file(fn), line=_line(fn), path=f"step {name!r}"),
                )
            )
            return StepRef(name, fn)

        return decorator

    def js(self, name: str, code: str, depends: Sequence[StepRef | str] | None = None) -> StepRef:
        """Declare a JavaScript step from a string."""
        ref = self.do(name, depends, code=code)(_no_function)
        # Problems should point at the js() call, not at the placeholder function.
        self._steps[-1] = msgspec.structs.replace(self._steps[-1], location=_caller(name))
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
