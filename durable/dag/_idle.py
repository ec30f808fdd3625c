"""Telling the worker when a DAG run only waits, so that it can park the run.

A delay instance sleeps until its first recorded start plus its duration, and does nothing
else meanwhile. When every instance in flight is such a sleeping delay and nothing is queued,
the run has nothing to do before the first delay ends: the worker may give its lease and slot
back and let the store offer the run again then (or when something is sent to it). The run,
resumed, relaunches the delays, which continue from their recorded start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._run import DagExecutor


class IdleWatch:
    def __init__(self, run: DagExecutor) -> None:
        self._run = run
        # Called with the earliest end of the delays when the run only waits for them (None:
        # it waits for something sent to it, a queued step's child run's end).
        self.on_idle: Callable[[DagExecutor, float | None], None] | None = None
        self.waiting = False  # the run's loop waits for an instance to finish
        self._sleeping: dict[int, float] = {}  # pos -> deadline, of the delays sleeping
        self._pending = False

    @contextlib.contextmanager
    def asleep(self, pos: int, deadline: float) -> Iterator[None]:
        """The instance at `pos` sleeps until `deadline` (a delay; math.inf: until something
        is sent to the run), and does nothing else."""
        self._sleeping[pos] = deadline
        self.poke()
        try:
            yield
        finally:
            del self._sleeping[pos]

    def poke(self) -> None:
        # Looked at once the current task has yielded: a delay that registers right after
        # being launched, or the run's loop about to wait, both see a settled picture.
        if self.on_idle is not None and not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._look)

    def _look(self) -> None:
        self._pending = False
        run = self._run
        # Waiting: the run's task is in its loop's wait (its end or an abort unsets it).
        if (
            self.on_idle is None
            or not self.waiting
            or run.cancelling
            or run.state.cancel_requested
            or run.state.finished
            or run.queue
            or not run.tasks
        ):
            return
        deadlines = [self._sleeping.get(p.pos) for p in run.tasks.values()]
        wake = [d for d in deadlines if d is not None]
        if len(wake) == len(deadlines):
            first = min(wake)
            self.on_idle(run, None if math.isinf(first) else first)
