"""A deterministic select: ctx.wait() and ctx.as_completed().

asyncio.wait(FIRST_COMPLETED) over durable awaitables takes another path on replay: every
recorded outcome is available at once, so whatever the scheduler runs first "wins". A select
here takes a position like a wait. Its start is recorded (SelectStarted: how many awaitables,
until when, the deadline of its timeout) and so is its outcome (SelectCompleted: the indices of
the awaitables done when it returned, in the order they completed). A replay waits for exactly
those to complete (they do: their own outcomes are recorded before the select's) and returns
the others as pending, whatever would complete first now. The timeout is a durable deadline,
registered with the run's waits like a timer: a parked run is woken at it, and a restarted one
does not wait the whole timeout again.

Raw asyncio.wait / as_completed / wait_for over a durable awaitable is refused (see
refuse_raw_race): the durable commands check, when they start and when they end, whether the
task running them is awaited by one of those helpers.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, Generic, Protocol, TypeVar

from durable._durations import check_duration
from durable._errors import NonDeterminismError, UnrecordedRaceError
from durable._events import CommandCancelled, SelectCompleted
from durable._runlog import RunLog
from durable._state import RunState, WaitState
from durable.runtime._order import ReplayOrder, done_key
from durable.runtime._registry import WorkflowDef
from durable.runtime._stops import EndOfHistory, ExecutionStopped
from durable.runtime._waits import Waits

T = TypeVar("T")


class SelectHost(Protocol):
    """The executor a select runs in (SelectHost; this module sits below it)."""

    state: RunState
    log: RunLog | None  # None: a replay
    waits: Waits
    order: ReplayOrder
    workflow: WorkflowDef
    cancelling: bool
    stopping: bool
    fatal: NonDeterminismError | None
    progress: int
    # The selects awaited now: each one's waiter (by id) -> the futures it races. What the
    # watch follows to tell a run that only waits from one whose raced tasks still work.
    races: dict[int, list[asyncio.Future[Any]]]

    @property
    def workflow_task(self) -> asyncio.Task[None] | None: ...

    def select_command(self, count: int, return_when: str, deadline: float | None) -> WaitState: ...

    def poke(self) -> None: ...


RETURN_WHEN = (asyncio.FIRST_COMPLETED, asyncio.FIRST_EXCEPTION, asyncio.ALL_COMPLETED)


class Selected(set[T]):
    """The `done` or `pending` set of ctx.wait(): a plain set of the futures (or of the tasks
    wrapping the coroutines passed), whose iteration and pop() follow a deterministic order,
    the same live and on replay: `done` in the order they completed, `pending` in the order
    they were passed. (A set of futures iterates in the order of their memory addresses.)"""

    def __init__(self, ordered: Iterable[T] = ()) -> None:
        self._order = list(ordered)
        super().__init__(self._order)

    def __iter__(self) -> Iterator[T]:
        ordered = [item for item in self._order if set.__contains__(self, item)]
        known = set(ordered)
        extra = [item for item in set.__iter__(self) if item not in known]  # added later
        return iter(ordered + extra)

    def pop(self) -> T:
        for item in self:
            self.remove(item)
            return item
        raise KeyError("pop from an empty set")

    def __repr__(self) -> str:
        return "{" + ", ".join(repr(item) for item in self) + "}"


def futures(aws: Iterable[Awaitable[T]], what: str) -> list[asyncio.Future[T]]:
    """The awaitables as futures, each once, in order: futures and tasks as they are, other
    awaitables (a step call, ctx.wait_for_signal()...) wrapped in a task."""
    if isinstance(aws, asyncio.Future) or asyncio.iscoroutine(aws):
        raise TypeError(f"{what} expects an iterable of awaitables, not {type(aws).__name__}")
    if isinstance(aws, AbstractSet) and not isinstance(aws, Selected):
        # The order gives each awaitable its recorded index; a set's order changes from one
        # execution to the next. (`pending` from ctx.wait() is ordered: pass it back as is.)
        raise TypeError(
            f"{what} needs its awaitables in a deterministic order: pass a list or a tuple, "
            "not a set"
        )
    out: list[asyncio.Future[T]] = []
    seen: set[int] = set()
    for aw in aws:
        fut = asyncio.ensure_future(aw)
        if id(fut) not in seen:
            seen.add(id(fut))
            out.append(fut)
    if not out:
        raise ValueError(f"{what} needs at least one awaitable")
    return out


def select_wait(
    ex: SelectHost,
    aws: Iterable[Awaitable[T]],
    return_when: str,
    timeout: float | None,
) -> Coroutine[Any, Any, tuple[set[asyncio.Future[T]], set[asyncio.Future[T]]]]:
    """ctx.wait(): takes its position now (like every command), returns the select."""
    if return_when not in RETURN_WHEN:
        raise ValueError(
            f"ctx.wait() return_when must be one of {RETURN_WHEN}, got {return_when!r}"
        )
    if timeout is not None:
        timeout = check_duration("ctx.wait() timeout", timeout)
    futs = futures(aws, "ctx.wait()")
    deadline = None if timeout is None else time.time() + timeout
    rec = ex.select_command(len(futs), return_when, deadline)
    return _wait(ex, rec, futs)


async def _wait(
    ex: SelectHost, rec: WaitState, futs: list[asyncio.Future[T]]
) -> tuple[set[asyncio.Future[T]], set[asyncio.Future[T]]]:
    chosen = await select(ex, rec, futs)
    picked = set(chosen)
    done = Selected(futs[i] for i in chosen)
    pending = Selected(f for i, f in enumerate(futs) if i not in picked)
    return done, pending


async def select(ex: SelectHost, rec: WaitState, futs: list[asyncio.Future[Any]]) -> list[int]:
    """The indices of the futures done when the select `rec` returns, in the order they
    completed: the recorded outcome (once those have completed again), or the live one,
    recorded."""
    if rec.cancelled:
        raise asyncio.CancelledError(f"{rec.describe()} at position {rec.pos}: cancelled")
    if rec.done:
        chosen = list(rec.selected)
        race = _Race([futs[i] for i in chosen], asyncio.ALL_COMPLETED)
        ex.races[id(race.waiter)] = race.futs
        try:
            if not race.satisfied():
                await race.waiter
        finally:
            ex.races.pop(id(race.waiter), None)
            race.close()
        _reraise_stop(futs, chosen)
        await ex.order.turn(done_key(rec.pos))  # it returned in its turn (see _order)
        if ex.log is None:  # a replay: what stays pending may stop at the end of the log
            picked = set(chosen)
            for i, fut in enumerate(futs):
                if i not in picked:
                    fut.add_done_callback(_retrieved)
        return chosen
    if ex.log is None:
        raise EndOfHistory()
    race = _Race(futs, rec.return_when)
    deadline = ex.waits.arm(rec) if rec.due is not None else None
    if deadline is not None:
        deadline.add_done_callback(race.release)
    ex.races[id(race.waiter)] = race.futs
    ex.poke()
    try:
        if not race.satisfied():
            await race.waiter
    except asyncio.CancelledError:
        if ex.cancelling and ex.log is not None and not rec.done:
            ex.log.append(CommandCancelled(pos=rec.pos))
        raise
    finally:
        ex.races.pop(id(race.waiter), None)
        race.close()
        if deadline is not None:
            deadline.remove_done_callback(race.release)
            ex.waits.disarm(rec)
        ex.progress += 1
    chosen = race.order()
    _reraise_stop(futs, chosen)
    if ex.stopping:
        raise ExecutionStopped()
    if ex.fatal is not None:
        raise ex.fatal
    timed_out = not race.satisfied()
    ex.log.append(SelectCompleted(pos=rec.pos, done=chosen, timed_out=timed_out))
    if ex.waits.futures:
        ex.poke()
    return chosen


def _reraise_stop(futs: list[asyncio.Future[Any]], chosen: list[int]) -> None:
    """A raced command that stopped because the execution stops, or reached the end of the
    history (a replay), stops the select too: nothing about it is recorded."""
    for i in chosen:
        fut = futs[i]
        if fut.done() and not fut.cancelled():
            exc = fut.exception()
            if exc is not None and not isinstance(exc, Exception):
                raise exc


def _retrieved(fut: asyncio.Future[Any]) -> None:
    """Mark a replayed select's pending awaitable's outcome as seen: past the log's end it
    raises EndOfHistory (engine control flow), not an error for asyncio to report."""
    if not fut.cancelled():
        fut.exception()


class _Race:
    """Which of `futs` completed, in what order, and whether `return_when` is met: asyncio.wait
    without asyncio.wait (whose done callbacks refuse_raw_race looks for)."""

    def __init__(self, futs: list[asyncio.Future[Any]], return_when: str) -> None:
        self.futs = futs
        self.return_when = return_when
        self.waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._index = {id(f): i for i, f in enumerate(futs)}
        self._order: list[int] = []
        for fut in futs:
            fut.add_done_callback(self._on_done)

    def _on_done(self, fut: asyncio.Future[Any]) -> None:
        self._order.append(self._index[id(fut)])
        if self.satisfied():
            self.release()

    def release(self, _fut: object = None) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)

    def satisfied(self) -> bool:
        done = [f for f in self.futs if f.done()]
        if self.return_when == asyncio.FIRST_COMPLETED:
            return bool(done)
        if self.return_when == asyncio.FIRST_EXCEPTION and any(
            not f.cancelled() and f.exception() is not None for f in done
        ):
            return True
        return len(done) == len(self.futs)

    def order(self) -> list[int]:
        """Done now, in completion order (those done before the race began: in index order)."""
        seen = set(self._order)
        early = [i for i, f in enumerate(self.futs) if f.done() and i not in seen]
        return [i for i in self._order if self.futs[i].done()] + early

    def close(self) -> None:
        for fut in self.futs:
            fut.remove_done_callback(self._on_done)


class AsCompleted(Generic[T]):
    """ctx.as_completed(): the raced awaitables in the order they complete, recorded.

    Iterated with `for`, it yields one coroutine per awaitable, to await in turn (like
    asyncio.as_completed); with `async for`, the futures themselves, done (tasks wrapping the
    coroutines passed), like asyncio.as_completed in Python 3.13. Each time none is ready it
    runs a select (FIRST_COMPLETED over those left, one position each, all sharing the
    deadline of `timeout`): on timeout, the next one raises TimeoutError."""

    def __init__(self, ex: SelectHost, aws: Iterable[Awaitable[T]], timeout: float | None):
        if timeout is not None:
            timeout = check_duration("ctx.as_completed() timeout", timeout)
        self._ex = ex
        self._left = futures(aws, "ctx.as_completed()")
        self._count = len(self._left)
        self._given = 0  # awaitables handed out so far
        self._ready: deque[asyncio.Future[T]] = deque()
        self._timeout = timeout
        self._deadline: float | None = None
        self._started = False
        self._timed_out = False

    async def _next(self) -> asyncio.Future[T]:
        if not self._ready:
            if self._timed_out:
                raise TimeoutError("ctx.as_completed(): the timeout ran out")
            deadline = self._deadline
            if not self._started and self._timeout is not None:
                deadline = time.time() + self._timeout
            rec = self._ex.select_command(len(self._left), asyncio.FIRST_COMPLETED, deadline)
            if not self._started:
                self._started = True
                self._deadline = rec.due  # the recorded one, on a replay
            chosen = await select(self._ex, rec, self._left)
            if not chosen:
                self._timed_out = True
                raise TimeoutError("ctx.as_completed(): the timeout ran out")
            picked = set(chosen)
            self._ready.extend(self._left[i] for i in chosen)
            self._left = [f for i, f in enumerate(self._left) if i not in picked]
        return self._ready.popleft()

    async def _result(self) -> T:
        return (await self._next()).result()

    def __iter__(self) -> Iterator[Coroutine[Any, Any, T]]:
        while self._given < self._count:
            self._given += 1
            yield self._result()

    def __aiter__(self) -> AsyncIterator[asyncio.Future[T]]:
        return self

    async def __anext__(self) -> asyncio.Future[T]:
        if self._given >= self._count:
            raise StopAsyncIteration
        self._given += 1
        return await self._next()


# -- refusing raw asyncio races -----------------------------------------------------------------

# The done callbacks asyncio's racing helpers put on the tasks they await, by (module, qualname).
_RAW_CALLBACKS = {
    ("asyncio.tasks", "_wait.<locals>._on_completion"): "asyncio.wait",
    ("asyncio.tasks", "as_completed.<locals>._on_completion"): "asyncio.as_completed",
    ("asyncio.tasks", "_AsCompletedIterator._handle_completion"): "asyncio.as_completed",
    ("asyncio.tasks", "_release_waiter"): "asyncio.wait_for",  # partial(_release_waiter, w)
}
# From Python 3.12 on, asyncio.wait_for awaits in the caller's task, under a timeout.
_WAIT_FOR_CODE = asyncio.wait_for.__code__ if sys.version_info >= (3, 12) else None


def refuse_raw_race(ex: SelectHost, pos: int) -> None:
    """Raise UnrecordedRaceError (fatal to the run) if the durable command at `pos`, starting
    or ending now, is raced by asyncio.wait / as_completed / wait_for."""
    helper = _raw_racer(ex)
    if helper is None:
        return
    err = UnrecordedRaceError(ex.state.run_id, pos, helper, ex.workflow.source)
    if ex.fatal is None:
        ex.fatal = err
    raise err


def _raw_racer(ex: SelectHost) -> str | None:
    task = asyncio.current_task()
    if task is not None and task is not ex.workflow_task:
        # CPython's futures expose their done callbacks as (callback, context) pairs.
        for callback, _context in getattr(task, "_callbacks", None) or ():
            fn = getattr(callback, "func", callback)
            key = (str(getattr(fn, "__module__", "")), str(getattr(fn, "__qualname__", "")))
            helper = _RAW_CALLBACKS.get(key)
            if helper is not None and _races(helper, callback) and not _in_library(task):
                return helper
    if _WAIT_FOR_CODE is not None:
        frame = sys._getframe(2)
        for _ in range(8):
            if frame is None:
                break
            if frame.f_code is _WAIT_FOR_CODE:
                return "asyncio.wait_for"
            frame = frame.f_back  # type: ignore[assignment]
    return None


# Libraries whose own use of asyncio.wait around the workflow's commands is deterministic as
# the engine drives them (see _in_library): not workflow code racing durable awaitables.
_LIBRARIES = ("pydantic_ai",)


def _closure(fn: Any) -> dict[str, Any]:
    cells = getattr(fn, "__closure__", None) or ()
    names = getattr(getattr(fn, "__code__", None), "co_freevars", ())
    out: dict[str, Any] = {}
    for name, cell in zip(names, cells, strict=False):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return out


def _races(helper: str, callback: Any) -> bool:
    """asyncio.wait(ALL_COMPLETED) without a timeout waits for all: nothing is raced."""
    if helper != "asyncio.wait":
        return True
    seen = _closure(callback)
    timed = seen.get("timeout_handle") is not None
    return seen.get("return_when") != asyncio.ALL_COMPLETED or timed


def _in_library(task: asyncio.Task[Any]) -> bool:
    """Whether the raced task runs a coroutine of a library of _LIBRARIES (Pydantic AI runs a
    tool call in a task of its own and waits for it; durable.agents makes those calls one at
    a time inside a workflow, so nothing is raced)."""
    code = getattr(task.get_coro(), "cr_code", None)
    if code is None:
        return False
    return any(
        code.co_filename.startswith(os.path.dirname(path) + os.sep)
        for name in _LIBRARIES
        if (path := getattr(sys.modules.get(name), "__file__", None))
    )
