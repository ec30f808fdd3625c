"""The workflow context: what workflow code may use besides steps, all of it deterministic."""

from __future__ import annotations

import contextvars
import datetime as dt
import random as _random
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable._executor import RunExecutor

# Set inside a workflow's task (and only there): step calls look it up to know they are being
# recorded. Step bodies run with it cleared, so a step calling a step is a plain call.
current_executor: contextvars.ContextVar[RunExecutor | None] = contextvars.ContextVar(
    "durable_current_executor", default=None
)


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
