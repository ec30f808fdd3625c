"""The workflow context: what workflow code may use besides steps, all of it deterministic."""

from __future__ import annotations

import contextvars
import datetime as dt
import random as _random
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from durable._executor import RunExecutor

# Set inside a workflow's task (and only there): step calls look it up to know they are being
# recorded. Step bodies run with it cleared, so a step calling a step is a plain call.
current_executor: contextvars.ContextVar[RunExecutor | None] = contextvars.ContextVar(
    "durable_current_executor", default=None
)


class StepContext(msgspec.Struct, frozen=True):
    """What a step body may know about the call it serves (see current_step())."""

    run_id: str
    position: int
    name: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts, crashes and replays of this one step call: pass it to an
        external system so a step that runs twice has its effect once."""
        return f"{self.run_id}:{self.position}"


# Set while a step body runs (in its task, or copied into its worker thread).
_current_step: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "durable_current_step", default=None
)


def current_step() -> StepContext:
    """The step call being executed, from inside a step body (async or sync)."""
    step = _current_step.get()
    if step is None:
        raise RuntimeError("current_step() is only available inside a step body run by a workflow")
    return step


class Context:
    """Passed as the first argument of every workflow.

    ctx.now(), ctx.random() and ctx.uuid4() are recorded in the log the first time and return
    the recorded value on every replay, so code branching on them stays deterministic.
    """

    def __init__(self, executor: RunExecutor) -> None:
        self._executor = executor

    @property
    def run_id(self) -> str:
        return self._executor.state.run_id

    @property
    def workflow(self) -> str:
        return self._executor.state.workflow

    @property
    def version(self) -> str:
        return self._executor.state.version

    @property
    def is_replaying(self) -> bool:
        """True while the code re-executes positions the log already holds."""
        return self._executor.is_replaying

    def now(self) -> dt.datetime:
        ts: float = self._executor.marker("now", _wall_clock)
        return dt.datetime.fromtimestamp(ts, dt.UTC)

    def random(self) -> float:
        value: float = self._executor.marker("random", _random.random)
        return value

    def uuid4(self) -> uuid.UUID:
        value: str = self._executor.marker("uuid4", lambda: uuid.uuid4().hex)
        return uuid.UUID(hex=value)

    def __repr__(self) -> str:
        return f"<Context run_id={self.run_id!r} workflow={self.workflow!r}@{self.version!r}>"


def _wall_clock() -> Any:
    return dt.datetime.now(dt.UTC).timestamp()
