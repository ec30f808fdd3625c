"""Appending one run's events: in order, with the state kept in step and failures noticed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import msgspec

from durable._children import cancel_requests
from durable._errors import ErrorInfo
from durable._events import (
    Event,
    LoggedEvent,
    RunCancelled,
    RunCompleted,
    RunContinued,
    RunFailed,
    StepStarted,
    encode_event,
)
from durable._snapshot import Snapshots
from durable._state import RunState, apply
from durable._state_updates import closing_changes
from storage import (
    Append,
    EventRecord,
    Fence,
    NewCompletion,
    NewInboxItem,
    RunUpdate,
    RunValue,
    Store,
    StreamRow,
    UpdateChange,
)

_RUNNING = RunUpdate(status="running")
# Events nobody waits for (a step starting, a result the workflow carries on with) are sent at
# most this long after they are appended. Not at the end of the loop turn: the workflow's next
# step is usually a turn or two away, and its start should share the commit.
WRITE_BEHIND_DELAY = 0.001


class RunLog:
    """The one writer of a run's log inside a worker.

    append() applies the event to the state at once and buffers it; the buffer goes to the
    store as one Append (one row update, one multi-row insert, one commit) when someone needs
    durability, or at the end of the current event-loop turn at the latest.

    What needs durability, and when (pipelined durability):
    - Workflow code may go on with a step's result before it is durable: it is deterministic and
      has no effects of its own, so nothing outside can have seen the result yet.
    - A step's body may run only once every *result* appended before it (step outcomes, ctx
      values) is durable: its effects may depend on them. StepStarted events are exempt; they
      record attempts, and a lost one costs nothing but an approximate count.
    - The run's end is reported only once durable.
    So a sequential run commits each step's completion together with the next step's start,
    and its last step together with RunCompleted: one commit per step, and no more.
    Events nobody waits for go out within WRITE_BEHIND_DELAY.
    """

    def __init__(
        self,
        store: Store,
        state: RunState,
        fence: Fence | None,
        *,
        on_durable: Callable[[str], None],
        on_failed: Callable[[BaseException], None],
        on_cancels_sent: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        self._store = store
        self.state = state
        self.fence = fence
        self.last_seq = state.last_seq
        self._on_durable = on_durable
        self._on_failed = on_failed
        # Told, once durable, which runs a commit asked to cancel (their queued, waiting ones
        # end at once: durable.queues._cancel).
        self._on_cancels_sent = on_cancels_sent
        self._mark_running = state.status == "pending"
        self.failed: BaseException | None = None
        # False until a step attempt has ended in this execution of the run: until then, a
        # step body could be the one that killed the previous execution's process, so its
        # StepStarted is made durable before it runs (see _step_runner, the crash-loop guard).
        self.attempt_ended = False
        self._buffer: list[EventRecord] = []
        self._update: RunUpdate | None = None
        self._flushed_seq = state.last_seq  # sent to the store
        self._durable_seq = state.last_seq  # known committed
        self._barrier_seq = state.last_seq  # the newest event a step body must not outrun
        self._tail: asyncio.Future[None] | None = None  # the newest Append sent
        self._timer: asyncio.TimerHandle | None = None
        self._consume: list[int] = []
        self._send: list[NewInboxItem] = []
        self._completions: list[NewCompletion] = []  # external waits opened (ExternalStarted)
        self._values: list[RunValue] = []  # ctx.set_event values (ValueSet)
        self._stream: list[StreamRow] = []  # workflow code's stream rows (StreamWritten)
        # A DAG run's (durable._snapshot): told of each event folded and of each commit.
        self.snapshots: Snapshots | None = None

        self._updates: list[UpdateChange] = []  # update rows changed with these events

    @property
    def store(self) -> Store:
        return self._store

    def append(
        self,
        event: Event,
        update: RunUpdate | None = None,
        at: float | None = None,
        *,
        consume: int | None = None,
        send: tuple[NewInboxItem, ...] = (),
        completions: tuple[NewCompletion, ...] = (),
        value: tuple[str, bytes] | None = None,
        stream: tuple[StreamRow, ...] = (),
        updates: tuple[UpdateChange, ...] = (),
    ) -> int:
        """Buffer `event`; `consume` is the inbox item it takes into the log and `send` are
        items for other runs' inboxes: both are written in the same commit as the event.

        The run's end is its last event: once it is appended, what a task the execution
        left behind would still append (a gathered step's outcome, a timer firing) is
        dropped, neither written nor folded into the state (the run is over: nobody reads
        it). Returns the event's seq (the last one's, if dropped)."""
        state = self.state
        if state.finished or state.continued_as:
            return self.last_seq
        if consume is not None:
            self._consume.append(consume)
        self._send.extend(send)
        self._completions.extend(completions)
        self._stream.extend(stream)  # workflow code's stream rows: in the event's commit
        self._updates.extend(updates)
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
        if not isinstance(event, StepStarted):
            self._barrier_seq = seq
        if value is not None:  # ctx.set_event: its projection row, in the same commit
            self._values.append(RunValue(state.run_id, value[0], value[1], seq, when))
        apply(state, seq, when, event)  # type: ignore[arg-type]
        if self.snapshots is not None:
            self.snapshots.appended(seq, when)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(WRITE_BEHIND_DELAY, self._timed)
        return seq

    def append_continuation(
        self,
        closing: RunContinued,
        opening: Sequence[Event],
        send: tuple[NewInboxItem, ...],
        at: float,
        *,
        updates: tuple[UpdateChange, ...] = (),
    ) -> list[LoggedEvent]:
        """ctx.continue_as_new() (durable.runtime._continue): `closing` ends this state's
        history; `opening` starts the next one, in the same commit. The opening events are not
        applied to this state (a new state folds them: returned, with their seqs); nothing
        appended to this log after them is written."""
        self.append(closing, at=at, send=send, updates=updates)
        run_id = self.state.run_id
        logged: list[LoggedEvent] = []
        for event in opening:
            seq = self.last_seq + 1
            data = encode_event(event)
            self._buffer.append(EventRecord(run_id, seq, type(event).__name__, data, at))
            self.last_seq = self._barrier_seq = seq
            logged.append(LoggedEvent(run_id, seq, at, event))  # type: ignore[arg-type]
        self._flush()
        return logged

    def notify(self) -> None:
        """Wake this process's waiters on the run (a write made outside the log: an update
        rejected)."""
        self._on_durable(self.state.run_id)

    def results_durable(self) -> asyncio.Future[None] | None:
        """A future to await before a step body runs, or None if nothing needs waiting for."""
        if self._durable_seq >= self._barrier_seq:
            return None
        return self._covering(self._barrier_seq)

    def all_durable(self) -> asyncio.Future[None] | None:
        """A future resolved once every event appended so far is durable (None if already)."""
        if self._durable_seq >= self.last_seq:
            return None
        return self._covering(self.last_seq)

    def _covering(self, seq: int) -> asyncio.Future[None]:
        if seq > self._flushed_seq:
            self._flush()  # don't wait for the end of the turn: someone is waiting now
        tail = self._tail
        assert tail is not None  # seq <= flushed_seq and not durable: a flush is in flight
        # Shielded: the awaiting task may be cancelled (a cancel delivered to the workflow
        # while it waits for durability), and cancelling the store's own future would make a
        # write that goes on (and may well commit) look failed, stopping the execution.
        return asyncio.shield(tail)

    def _timed(self) -> None:
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            # A timer left running would fire in the middle of the next step and send that
            # step's completion alone, a commit of its own.
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        records, self._buffer = self._buffer, []
        update, self._update = self._update, None
        expected, self._flushed_seq = self._flushed_seq, records[-1].seq
        consume, self._consume = tuple(self._consume), []
        send, self._send = tuple(self._send), []
        opened, self._completions = tuple(self._completions), []
        values, self._values = tuple(self._values), []
        stream, self._stream = tuple(self._stream), []
        changes, self._updates = tuple(self._updates), []
        append = Append(
            self.state.run_id,
            tuple(records),
            expected,
            self.fence,
            update,
            consume=consume,
            send=send,
            completions=opened,
            values=values,
            stream=stream,
            updates=changes,
        )
        try:
            fut = self._store.append(append)
        except Exception as exc:  # the store is closed: nothing was written
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(exc)
        self._tail = fut
        last = records[-1].seq
        asked = tuple(item.run_id for item in send if item.kind == "cancel")
        fut.add_done_callback(lambda f: self._settle(f, last, asked))

    def abort(self, exc: BaseException) -> None:
        """A write made for this run outside its log (a step body's stream values) failed:
        stop the execution as a failed append would."""
        if self.failed is None:
            self.failed = exc
            self._on_failed(exc)

    def _settle(self, fut: asyncio.Future[None], seq: int, asked: tuple[str, ...] = ()) -> None:
        exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
        if exc is None:
            self._durable_seq = max(self._durable_seq, seq)
            if self.snapshots is not None:
                self.snapshots.durable(self._durable_seq)
            self._on_durable(self.state.run_id)
            if asked and self._on_cancels_sent is not None:
                self._on_cancels_sent(asked)
        elif self.failed is None:
            self.failed = exc
            self._on_failed(exc)


def _merge(old: RunUpdate, new: RunUpdate) -> RunUpdate:
    return RunUpdate(
        status=new.status or old.status,
        result=new.result if new.result is not None else old.result,
        error=new.error if new.error is not None else old.error,
        finished_at=new.finished_at if new.finished_at is not None else old.finished_at,
    )


class ChildOutcome(msgspec.Struct, frozen=True):
    """How a child run ended, as sent to its parent's inbox (kind "child", name = its id)."""

    status: str
    result: bytes = b""
    error: ErrorInfo | None = None


def child_end_notice(run_id: str, parent: str, outcome: ChildOutcome, now: float) -> NewInboxItem:
    """The item telling a parent how its child `run_id` ended (one per child: its dedupe key)."""
    return NewInboxItem(
        run_id=parent,
        kind="child",
        name=run_id,
        payload=msgspec.msgpack.encode(outcome),
        created_at=now,
        dedupe_key=f"child:{run_id}",
    )


async def append_end(log: RunLog, event: RunCompleted | RunFailed | RunCancelled) -> None:
    """Append the run's final event with the run row's matching update; return once durable.

    A child run tells its parent in the same commit (the parent's inbox), so a parent waiting
    for it is woken, and never misses its end; and a parent asks its unfinished children to
    cancel in that commit too (unless they were abandoned: see durable._children)."""
    now = time.time()
    if isinstance(event, RunFailed):
        outcome = ChildOutcome("failed", error=event.error)
        update = RunUpdate(
            status="failed", error=msgspec.msgpack.encode(event.error), finished_at=now
        )
    elif isinstance(event, RunCancelled):
        info = ErrorInfo(type="durable.Cancelled", message=event.reason or "cancelled")
        outcome = ChildOutcome("cancelled", error=info)
        update = RunUpdate(status="cancelled", finished_at=now)
    else:
        error = None if event.error is None else msgspec.msgpack.encode(event.error)
        outcome = ChildOutcome(event.status, bytes(event.result), event.error)
        update = RunUpdate(
            status=event.status, result=bytes(event.result), error=error, finished_at=now
        )
    parent = log.state.parent_run_id
    reason = f"parent run {log.state.run_id!r} ended {outcome.status}"
    send = cancel_requests(log.state, reason, now)
    if parent is not None:
        send += (child_end_notice(log.state.run_id, parent, outcome, now),)
    changes = closing_changes(log.state.updates, update.status or "", now)
    log.append(event, update, at=now, send=send, updates=changes)
    durable = log.all_durable()
    if durable is not None:
        await durable
