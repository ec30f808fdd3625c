"""Appending one run's events: in order, with the state kept in step and failures noticed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from durable._events import Event, encode_event
from durable._state import RunState, apply
from storage import Append, EventRecord, Fence, RunUpdate, Store

_RUNNING = RunUpdate(status="running")


class RunLog:
    """The one writer of a run's log inside a worker.

    append() applies the event to the state at once and returns a future that resolves when it
    is durable. The events a run appends during one turn of the event loop (a step starting and,
    if it is quick, finishing; a clock reading; a step of a gather) go to the store together at
    the end of that turn as one Append: one row update and one multi-row insert, one commit.
    Sent one by one, the write-behind StepStarted would wake the writer and cost an fsync of its
    own before the StepCompleted right behind it.

    Callers await the future where the engine's promise needs durability (a step's result before
    the workflow may act on it, the run's end) and ignore it otherwise: the store applies one
    run's writes in order, so a durable event implies every earlier one is durable too.
    """

    def __init__(
        self,
        store: Store,
        state: RunState,
        fence: Fence | None,
        *,
        on_durable: Callable[[str], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        self._store = store
        self.state = state
        self.fence = fence
        self.last_seq = state.last_seq
        self._on_durable = on_durable
        self._on_failed = on_failed
        self._mark_running = state.status == "pending"
        self.failed: BaseException | None = None
        self._buffer: list[EventRecord] = []
        self._update: RunUpdate | None = None
        self._flushed_seq = state.last_seq
        self._pending: asyncio.Future[None] | None = None

    def append(
        self, event: Event, update: RunUpdate | None = None, at: float | None = None
    ) -> asyncio.Future[None]:
        state = self.state
        seq = self.last_seq + 1
        when = time.time() if at is None else at
        self._buffer.append(
            EventRecord(state.run_id, seq, type(event).__name__, encode_event(event), when)
        )
        if self._mark_running:
            self._mark_running = False
            self._update = _RUNNING
        if update is not None:
            self._update = update if self._update is None else _merge(self._update, update)
        self.last_seq = seq
        apply(state, seq, when, event)  # type: ignore[arg-type]
        pending = self._pending
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._pending = loop.create_future()
            loop.call_soon(self._flush)
        return pending

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        records, self._buffer = self._buffer, []
        update, self._update = self._update, None
        if pending is None or not records:
            return
        expected, self._flushed_seq = self._flushed_seq, records[-1].seq
        try:
            fut = self._store.append(
                Append(self.state.run_id, tuple(records), expected, self.fence, update)
            )
        except Exception as exc:  # the store is closed: nothing was written
            self._settle(pending, exc)
            return
        fut.add_done_callback(lambda f: self._settle(pending, _outcome(f)))

    def _settle(self, pending: asyncio.Future[None], exc: BaseException | None) -> None:
        if exc is None:
            if not pending.done():
                pending.set_result(None)
            self._on_durable(self.state.run_id)
            return
        if not pending.done():
            pending.set_exception(exc)
            pending.exception()  # nobody may await a write-behind event: mark it retrieved
        if self.failed is None:
            self.failed = exc
            self._on_failed(exc)


def _outcome(fut: asyncio.Future[None]) -> BaseException | None:
    if fut.cancelled():
        return asyncio.CancelledError()
    return fut.exception()


def _merge(old: RunUpdate, new: RunUpdate) -> RunUpdate:
    return RunUpdate(
        status=new.status or old.status,
        result=new.result if new.result is not None else old.result,
        error=new.error if new.error is not None else old.error,
        finished_at=new.finished_at if new.finished_at is not None else old.finished_at,
    )
