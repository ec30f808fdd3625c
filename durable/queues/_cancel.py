"""Cancelling a queued run that still waits: it ends `cancelled` at once, not when its queue
admits it.

A cancel request is an inbox item that the run's executor delivers, and no worker executes a
queued run before its queue admits it (storage._queue_ops): behind a full queue, a long delay
or a debounce burst, the request would wait as long. But a waiting run that no worker ever
claimed has done nothing: its log is its RunStarted alone, no code of it ran, it has no
children and holds no slot. So whoever cancels it ends it here, with the events its executor
would write for a run cancelled before its first step (CancelRequested, RunCancelled) and
the same row update and parent notice as any run's end (durable._runlog.append_end), in one
store operation that applies only while the run still waits (Store.cancel_waiting: a claim
admitting it at that instant either comes first, and its executor delivers the cancel as for
any run, or finds it cancelled).

Who calls it: Client.cancel (app.cancel, `durable cancel`, the HTTP API) before sending the
request, so a waiting run is never made ready by the request it cannot act on; and the worker
after a run's commit that asked children to cancel (a parent cancelled or ended, its queued
DAG steps' children waiting), consuming the request that commit put in the child's inbox.
"""

from __future__ import annotations

import time

from durable._errors import ErrorInfo
from durable._events import CancelRequested, Event, RunCancelled, encode_event
from durable._runlog import ChildOutcome, child_end_notice
from storage import (
    Append,
    EventRecord,
    InboxItem,
    NewInboxItem,
    RunRecord,
    RunUpdate,
    Store,
)


def still_waiting(run: RunRecord) -> bool:
    """The row of a queued run no worker ever took (the store checks it again, atomically)."""
    return (
        run.queue is not None
        and run.status == "pending"
        and run.owner is None
        and run.epoch == 0
        and run.last_seq == 1
    )


async def cancel_if_waiting(store: Store, run: RunRecord, reason: str = "") -> bool:
    """End `run` cancelled if it still waits in its queue: True; False (nothing written) if
    it does not, and its executor is to deliver the request. A cancel request already in its
    inbox (its parent's) is consumed, and its reason is the one recorded."""
    if not still_waiting(run):
        return False
    asked: InboxItem | None = next(
        (i for i in await store.read_inbox([run.run_id]) if i.kind == "cancel"), None
    )
    if asked is not None:
        reason = asked.payload.decode(errors="replace")
    now = time.time()
    request = CancelRequested(reason=reason, inbox_id=asked.id if asked is not None else 0)
    end = RunCancelled(reason=reason)
    events = tuple(_record(run.run_id, seq, e, now) for seq, e in ((2, request), (3, end)))
    send: tuple[NewInboxItem, ...] = ()
    if run.parent_run_id is not None:
        info = ErrorInfo(type="durable.Cancelled", message=reason or "cancelled")
        outcome = ChildOutcome("cancelled", error=info)
        send = (child_end_notice(run.run_id, run.parent_run_id, outcome, now),)
    append = Append(
        run.run_id,
        events,
        1,
        None,
        RunUpdate(status="cancelled", finished_at=now),
        consume=(asked.id,) if asked is not None else (),
        send=send,
    )
    return await store.cancel_waiting(append)


def _record(run_id: str, seq: int, event: Event, at: float) -> EventRecord:
    return EventRecord(run_id, seq, type(event).__name__, encode_event(event), at)
