"""Watching one execution of a run, between the workflow's turns.

After something changed (a wait ended, a step ended, a cancel was recorded: poke()), once the
workflow's task has yielded: a recorded cancellation not delivered yet is delivered at the
workflow's current await, whatever it awaits; and a run that only waits is reported idle to
the worker (on_idle), which may park it. Idleness is decided only after LOOKS_BEFORE_IDLE looks
in a row, one loop iteration apart, saw nothing move and the workflow's task blocked: a wait
that ended wakes its awaiter only a few iterations later (its task's done callbacks, a select's
waiter, the workflow's task), and a run parked then would never be woken. park_problem() is
the invariant the worker checks before it parks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from durable._state import RunState
from durable.runtime._child_starts import ChildStarts
from durable.runtime._order import ReplayOrder
from durable.runtime._waits import Waits

# Consecutive quiet looks (each one loop iteration apart) before a run is deemed idle.
LOOKS_BEFORE_IDLE = 3
# Seconds a run blocked on a future the watch cannot trace (see RunWatch.blocked_on) must
# stay quiet before it is deemed idle: a library's internal hop (a thread, a queue) ends
# well within it; a run waiting for a signal through a library's own task parks after it.
UNKNOWN_GRACE = 0.3


def _from_thread(callback: object) -> bool:
    """A future asyncio chained to a concurrent one (run_in_executor, to_thread)."""
    return getattr(callback, "__qualname__", "").startswith("_chain_future.")


class WatchHost(Protocol):
    """The executor watched (RunExecutor; this module sits below it)."""

    state: RunState
    waits: Waits
    children: ChildStarts
    inflight: int
    progress: int
    cancelling: bool
    stopping: bool
    races: dict[int, list[asyncio.Future[Any]]]  # see _select.SelectHost
    order: ReplayOrder

    @property
    def on_idle(self) -> Callable[[Any], None] | None: ...

    @property
    def workflow_task(self) -> asyncio.Task[None] | None: ...

    @property
    def ending(self) -> bool: ...

    @property
    def positions_used(self) -> int: ...

    def busy(self) -> bool: ...


class RunWatch:
    def __init__(self, host: WatchHost) -> None:
        self.host = host
        self._pending = False
        self._seen: tuple[int, int] | None = None
        self._quiet_looks = 0
        self._quiet_since = 0.0

    def poke(self) -> None:
        """Something changed: look once the workflow's task has yielded."""
        if not self._pending and self.host.workflow_task is not None:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._look)

    def _look(self) -> None:
        self._pending = False
        host = self.host
        task = host.workflow_task
        if host.stopping or task is None or task.done():
            return
        state = host.state
        # Delivered wherever the workflow awaits: a step, a durable wait, or anything else
        # (asyncio.sleep, an asyncio.Event); never while the run's end is being recorded.
        if (
            state.cancel_requested
            and not state.cancel_delivered
            and not host.cancelling
            and not host.ending
        ):
            if host.order.settling or host.order.active:
                # A replay: live, the cancel reached the command the workflow awaited when
                # it arrived, and the replay has not reached it yet (see _order.settle).
                self.poke()
                return
            host.cancelling = True
            task.cancel()
            return
        on_idle = host.on_idle
        if host.busy() or not host.waits.futures or on_idle is None:
            self._seen = None
            return
        seen = (host.progress, host.positions_used)
        blocked = self.blocked_on()
        now = time.monotonic()
        if seen != self._seen or blocked == "work":
            self._seen = seen
            self._quiet_looks = 0
            self._quiet_since = now
            self.poke()
            return
        self._quiet_looks += 1
        if self._quiet_looks < LOOKS_BEFORE_IDLE:
            self.poke()
            return
        if blocked == "unknown" and now - self._quiet_since < UNKNOWN_GRACE:
            if not self._pending:
                self._pending = True
                remaining = UNKNOWN_GRACE - (now - self._quiet_since)
                asyncio.get_running_loop().call_later(remaining, self._look)
            return
        self._seen = None
        on_idle(host)

    def park_problem(self) -> str | None:
        """Why the run must not be parked now (None: it may be). A parked run must be unable
        to make progress and must have something that wakes it: a due time, or an inbox item
        it waits for (a signal not received yet, a child run's end not recorded yet)."""
        host = self.host
        task = host.workflow_task
        if task is None or task.done():
            return "its workflow's task is not running"
        if host.inflight > 0:
            return f"{host.inflight} step(s) are running"
        if host.children.in_flight > 0:
            return f"{host.children.in_flight} child run(s) are being created"
        if self.task_runnable():
            return "its workflow's task is runnable"
        problem = host.waits.park_problem()
        if problem is None and self.blocked_on() == "work":
            problem = "a task of the run works on something its log does not know of"
        return problem

    def blocked_on(self) -> str:
        """What holds the workflow's task: "waits" (only the run's durable waits: it is
        blocked on one of them, or on tasks (a ctx.wait's, an asyncio.gather's, one it
        awaits) that all are, recursively), "work" (a task is runnable, or waits for a thread:
        work the log knows nothing of, that parking would throw away and that would leave the
        run asleep until its next timer), or "unknown" (a future of something else: a
        library's event or queue, a socket: maybe set by another task that waits durably,
        maybe by work; the run is idle only once that has stayed quiet for UNKNOWN_GRACE)."""
        task = self.host.workflow_task
        if task is None or task.done():
            return "work"
        durable = {id(f) for f in self.host.waits.futures.values()}
        races = self.host.races
        seen: set[int] = set()
        found = "waits"

        def visit(fut: asyncio.Future[Any]) -> bool:  # False: work found, stop
            nonlocal found
            if id(fut) in seen or id(fut) in durable:
                return True
            seen.add(id(fut))
            if fut.done():
                return False  # its awaiter is about to run
            if isinstance(fut, asyncio.Task):
                # CPython's Task keeps the future it is blocked on here (C and Python tasks).
                blocker = getattr(fut, "_fut_waiter", None)
                return blocker is not None and visit(blocker)
            members = races.get(id(fut))
            if members is None:
                members = getattr(fut, "_children", None)  # asyncio.gather's future
            if members is not None:
                return all(visit(m) for m in members if not m.done())
            if any(_from_thread(cb) for cb, _ in getattr(fut, "_callbacks", None) or ()):
                return False  # run_in_executor / to_thread: a thread works for it
            found = "unknown"
            return True

        return found if visit(task) else "work"

    def task_runnable(self) -> bool:
        """The workflow's task is scheduled to run (not blocked on an unfinished future)."""
        task = self.host.workflow_task
        if task is None or task.done():
            return False
        # CPython's Task keeps the future it is blocked on here (C and Python tasks alike).
        blocker = getattr(task, "_fut_waiter", None)
        return blocker is None or bool(blocker.done())
