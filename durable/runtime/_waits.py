"""Durable waits of a Python workflow: timers, signals, child runs and external waits.

A wait takes a position like a step. Its start is recorded (TimerStarted, WaitStarted,
ChildStarted) with everything that decides its outcome (when the timer fires, the signal's
deadline, the child's run id), and so is its end (TimerFired, WaitCompleted naming the signal it
got, ChildCompleted, CommandCancelled): a replay gives every wait the outcome it had, and a
resumed run waits only for what is left. While a run waits and runs nothing, it holds no memory
in a worker: the worker stops executing it and the store wakes it (the timer's due time, a
signal or a child's end arriving in its inbox); it is then replayed to the wait, cheaply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from durable._errors import ChildRunFailed, ErrorInfo, ExternalFailed
from durable._events import (
    ChildCompleted,
    CommandCancelled,
    ExternalCompleted,
    InboxDropped,
    SignalReceived,
    TimerFired,
    WaitCompleted,
)
from durable._runlog import ChildOutcome, RunLog
from durable._state import RunState, WaitState
from durable.runtime._external import KIND as EXTERNAL
from durable.runtime._external import Outcome, decode_outcome, item_wait, outcome_item
from durable.runtime._order import ReplayOrder
from storage import InboxItem, StorageError

log = logging.getLogger("durable")
# A timeout that could not be settled (the database is unavailable) is tried again after this.
SETTLE_RETRY = 1.0


class WaitsOwner(Protocol):
    """The executor whose waits these are (RunExecutor; this module sits below it)."""

    state: RunState
    log: RunLog | None  # None: replay only
    cancelling: bool  # the run's cancellation is being delivered
    progress: int  # bumped whenever a durable awaitable ends
    order: ReplayOrder  # a live wait's end comes after a replay's recorded outcomes

    def poke(self) -> None:
        """Something moved: the executor looks again whether the run is idle."""

    def request_cancel(self, item: InboxItem | None, reason: str = "") -> None:
        """A cancel arrived in the run's inbox: record it and deliver it to the workflow."""


class Waits:
    """The live waits of one executor: a future per position the workflow is awaiting."""

    def __init__(self, executor: WaitsOwner) -> None:
        self.ex = executor
        self.futures: dict[int, asyncio.Future[Any]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._settling: set[asyncio.Task[None]] = set()  # external waits timing out

    # -- waiting ---------------------------------------------------------------------------

    async def wait(self, rec: WaitState, decode: Callable[[msgspec.Raw], Any]) -> Any:
        """The outcome of the wait `rec`: recorded, or awaited live."""
        if rec.done:
            return self.recorded(rec, decode)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.futures[rec.pos] = fut
        if rec.kind == "signal":
            self._match_signal(rec)
        if not fut.done() and rec.due is not None:
            delay = max(0.0, rec.due - time.time())
            self._timers[rec.pos] = loop.call_later(delay, self._due, rec.pos)
        self.ex.poke()
        try:
            await fut
        finally:
            self.ex.progress += 1
            self.futures.pop(rec.pos, None)
            handle = self._timers.pop(rec.pos, None)
            if handle is not None:
                handle.cancel()
            if fut.cancelled():  # the workflow's task was cancelled while waiting here
                self._cancelled_live(rec)
            elif self.futures:  # other waits remain (gathered): the run may be idle for long
                self.ex.poke()
        await self.ex.order.after_recorded()  # a replay's recorded outcomes first (_order)
        return self.recorded(rec, decode)

    def arm(self, rec: WaitState) -> asyncio.Future[Any]:
        """A future ended at `rec.due` (a select's deadline), registered like an awaited wait
        (so the run is parked until then and woken at it) but awaited by the caller."""
        assert rec.due is not None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.futures[rec.pos] = fut
        self._timers[rec.pos] = loop.call_later(max(0.0, rec.due - time.time()), self._due, rec.pos)
        return fut

    def disarm(self, rec: WaitState) -> None:
        self.futures.pop(rec.pos, None)
        handle = self._timers.pop(rec.pos, None)
        if handle is not None:
            handle.cancel()

    def recorded(self, rec: WaitState, decode: Callable[[msgspec.Raw], Any]) -> Any:
        state = self.ex.state
        if rec.cancelled:
            raise asyncio.CancelledError(f"{rec.describe()} at position {rec.pos}: cancelled")
        if rec.kind == "timer":
            return None
        if rec.kind == EXTERNAL:
            ended = state.external_ends[rec.pos]
            if ended.status == "completed":
                return decode(ended.result)
            if ended.status == "failed":
                error = ended.error or ErrorInfo("durable.ExternalFailed", "failed")
                raise ExternalFailed(rec.signal, error)
            raise TimeoutError(f"external wait {rec.signal!r}: no completion before its deadline")
        if rec.kind == "signal":
            if not rec.signal_seq:
                raise TimeoutError(f"no signal {rec.signal!r} before the wait's deadline")
            return decode(state.signals[rec.signal_seq].payload)
        end = state.children[rec.child_run_id]
        if end.status in ("succeeded", "partial"):
            return decode(end.result)
        raise ChildRunFailed(rec.child_run_id, rec.child_workflow, end.status, end.error)

    def _due(self, pos: int) -> None:
        """A timer fired, or a signal wait reached its deadline."""
        self._timers.pop(pos, None)
        fut = self.futures.get(pos)
        rec = self.ex.state.waits.get(pos)
        if fut is None or fut.done() or rec is None or rec.done:
            return
        if rec.due is not None and time.time() < rec.due:  # never early (clock steps)
            self._timers[pos] = asyncio.get_running_loop().call_later(
                rec.due - time.time(), self._due, pos
            )
            return
        if rec.kind == EXTERNAL:
            # Not recorded here: the timeout must win the wait's row first (a completion may
            # have committed already); the outcome comes back through the inbox either way.
            task = asyncio.ensure_future(self._time_out(rec))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            return
        if rec.kind != "select":  # a select records its own outcome (see _select)
            run_log = self.ex.log
            assert run_log is not None
            run_log.append(TimerFired(pos=pos) if rec.kind == "timer" else WaitCompleted(pos=pos))
        fut.set_result(None)

    async def _time_out(self, rec: WaitState) -> None:
        """Settle the external wait `rec` as timed out (if nothing settled it first), then
        deliver whichever outcome won: it is in the run's inbox now."""
        run_log = self.ex.log
        state = self.ex.state
        if run_log is None:
            return
        run_id, pos = state.run_id, rec.pos
        now = time.time()
        try:
            settled = await run_log.store.settle_completion(
                run_id,
                pos,
                state.externals[pos].nonce,
                status="timed_out",
                now=now,
                item=outcome_item(
                    run_id, pos, state.externals[pos].nonce, Outcome("timed_out"), now
                ),
            )
            if settled.record is None:
                # No row (a forked run's copied wait): nothing else can end it.
                if not rec.done and not state.finished:
                    run_log.append(ExternalCompleted(pos=pos, status="timed_out"))
                    self._wake(pos)
                return
            items = await run_log.store.read_inbox([run_id])
        except StorageError as exc:
            log.warning(
                "run %s: timing out external wait %d failed (retrying): %s", run_id, pos, exc
            )
            self._timers[pos] = asyncio.get_running_loop().call_later(SETTLE_RETRY, self._due, pos)
            return
        for item in items:
            if item.kind == EXTERNAL and item_wait(item.name) == (pos, state.externals[pos].nonce):
                self.deliver(item)

    def _wake(self, pos: int) -> None:
        fut = self.futures.get(pos)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _cancelled_live(self, rec: WaitState) -> None:
        log = self.ex.log
        if self.ex.cancelling and log is not None and not rec.done:
            log.append(CommandCancelled(pos=rec.pos))

    # -- what arrives from the inbox -------------------------------------------------------

    def deliver(self, item: InboxItem) -> None:
        """Record an inbox item in the log (the row is deleted in the same commit) and wake
        the wait it ends, if the workflow is waiting for it."""
        ex = self.ex
        log = ex.log
        state = ex.state
        if log is None or item.id in state.inbox_ids or state.finished:
            return
        if item.kind == "signal":
            signal = SignalReceived(
                name=item.name, payload=msgspec.Raw(item.payload), inbox_id=item.id
            )
            log.append(signal, consume=item.id)
            # The awaited waits (few), not all the run's: an entity looping on signals has
            # as many waits as signals.
            for pos in sorted(self.futures):
                rec = state.waits.get(pos)
                if rec is None or rec.kind != "signal" or rec.signal != item.name:
                    continue
                if not rec.done:
                    self._match_signal(rec)
                break
        elif item.kind == "child":
            outcome = msgspec.msgpack.decode(item.payload, type=ChildOutcome)
            log.append(
                ChildCompleted(
                    run_id=item.name,
                    status=outcome.status,
                    result=msgspec.Raw(outcome.result or b"\xc0"),
                    error=outcome.error,
                    inbox_id=item.id,
                ),
                consume=item.id,
            )
            for pos in state.child_waits.get(item.name, ()):
                fut = self.futures.get(pos)
                if (
                    fut is not None
                    and not fut.done()
                    and state.waits[pos].child_run_id == item.name
                ):
                    fut.set_result(None)
        elif item.kind == "cancel":
            ex.request_cancel(item)
        elif item.kind == EXTERNAL:
            self._deliver_external(item)

    def _deliver_external(self, item: InboxItem) -> None:
        """The outcome the store settled an external wait with (a completion, a failure, its
        timeout): recorded, and the wait woken."""
        run_log = self.ex.log
        assert run_log is not None
        state = self.ex.state
        named = item_wait(item.name)
        rec = state.waits.get(named[0]) if named is not None else None
        opened = state.externals.get(named[0]) if named is not None else None
        try:
            outcome = decode_outcome(item.payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            outcome = None
        if (
            rec is None
            or rec.kind != EXTERNAL
            or rec.done
            or outcome is None
            or opened is None
            or named is None
            or opened.nonce != named[1]  # a previous history's wait at this position
        ):
            # Nothing waits for it (a hand-made item): taken out, unread, so it is not
            # delivered again and again.
            run_log.append(InboxDropped(inbox_ids=[item.id]), consume=item.id)
            return
        result = msgspec.Raw(outcome.result) if outcome.result is not None else msgspec.Raw(b"\xc0")
        ended = ExternalCompleted(
            pos=rec.pos,
            status=outcome.status,
            result=result,
            error=outcome.error,
            inbox_id=item.id,
        )
        run_log.append(ended, consume=item.id)
        self._wake(rec.pos)

    def _match_signal(self, rec: WaitState) -> None:
        """Give the waiting `rec` the oldest signal of its name nobody got yet."""
        state = self.ex.state
        log = self.ex.log
        fut = self.futures.get(rec.pos)
        if log is None or fut is None or fut.done():
            return
        for seq in state.unconsumed.get(rec.signal, ()):  # oldest first (see _state)
            log.append(WaitCompleted(pos=rec.pos, signal_seq=seq))
            fut.set_result(None)
            return

    # -- for the worker --------------------------------------------------------------------

    def park_problem(self) -> str | None:
        """Why these waits cannot all be left to the store to wake (None: they can): nothing
        is awaited, an awaited wait has already ended, or what would end it has already
        arrived (a received signal nobody got, a child's recorded end)."""
        state = self.ex.state
        if not self.futures:
            return "it awaits no durable wait"
        for pos, fut in sorted(self.futures.items()):
            rec = state.waits.get(pos)
            if rec is None:
                return f"position {pos} is awaited but not recorded"
            if fut.done() or rec.done:
                return f"{rec.describe()} at position {pos} has ended"
            if rec.kind == "signal" and state.unconsumed.get(rec.signal):
                return f"{rec.describe()} at position {pos}: that signal was already received"
            if rec.kind == "child" and rec.child_run_id in state.children:
                return f"{rec.describe()} at position {pos}: the child run already ended"
        return None

    def repair(self) -> None:
        """End the awaited waits whose outcome already arrived (see park_problem)."""
        state = self.ex.state
        for pos in sorted(self.futures):
            rec = state.waits.get(pos)
            fut = self.futures[pos]
            if rec is None or fut.done():
                continue
            if rec.done or (rec.kind == "child" and rec.child_run_id in state.children):
                fut.set_result(None)
            elif rec.kind == "signal":
                self._match_signal(rec)

    def idle_until(self) -> float | None:
        """When the soonest wait the workflow is blocked on ends by itself (None: only
        something arriving can end them)."""
        dues = [
            rec.due
            for pos in self.futures
            if (rec := self.ex.state.waits.get(pos)) is not None and rec.due is not None
        ]
        return min(dues, default=None)
