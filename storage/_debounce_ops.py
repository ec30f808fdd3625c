"""Debounced starts (Store.debounce_run): the rules, the SQL both SQL backends share, and the
SQLite writer's operation (storage._debounce_pg has PostgreSQL's, storage._memory the memory
store's).

A debounced run is a queued run (storage._queue_ops) whose dedupe key names its burst. A call
finds the live run holding the key and, if that run still waits (status pending, never
admitted, never claimed: no owner, its log still only its first event, nothing in its inbox),
*rearms* it: its input
and its first event (RunStarted, which carries the input) are replaced by the call's, its
version by the call's, and its ready_at pushed to the call's (capped at created_at + max_wait:
the burst's first call is the run's creation). The UPDATE itself checks "still waiting", so a
worker that admitted the run an instant before wins: the UPDATE changes nothing, and the call
begins a new burst instead.

Rewriting the first event, not appending one: the log is append-only so that what a run did
is never rewritten under whoever read it. A waiting run has done nothing; no worker has read
its log (it was never claimed, which the UPDATE's condition proves in the same transaction),
and the event is replaced whole, with its checksum, so the log stays gap-free and every reader
(the replayer, fork, retry, `durable replay`, golden histories) keeps seeing one RunStarted
with the input the run executes with. An appended "InputReplaced" event would instead be a
new event type every one of those readers must learn, for a state that ends before the first
step, and a burst of ten thousand calls would leave ten thousand inputs in the log.

A new burst while the old run is admitted or running: that run still holds the key in the
unique index of live dedupe keys, so the call first moves it to `key#<its run id>` (a
generation of its own; nothing reads a started run's dedupe key), then creates the new run
with the key. Calls of one key serialize: SQLite's writer holds the write lock, PostgreSQL's
calls take a transaction-scoped advisory lock of (queue, key) first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from storage._checksum import checksum_of
from storage._queue_ops import ACTIVE, create_queued
from storage._records import EventRecord, NewRun, RunRecord

HOLDER = (
    "SELECT run_id FROM durable_runs WHERE queue = ? AND dedupe_key = ? AND status IN " + ACTIVE
)
# The guard: only a run that still waits, unclaimed and unadmitted, is rearmed; and not one
# with something in its inbox (a cancel request, a signal): that burst is over, the call
# begins a new one (a rearm would put the cancel off to the new ready_at).
STILL_WAITING = (
    "run_id = ? AND workflow = ? AND status = 'pending' AND admitted_at IS NULL "
    "AND owner IS NULL AND last_seq = 1 "
    "AND NOT EXISTS (SELECT 1 FROM durable_inbox AS i WHERE i.run_id = durable_runs.run_id)"
)
REARM = (
    "UPDATE durable_runs SET input = ?, version = ?, ready_at = ?, updated_at = ? "
    f"WHERE {STILL_WAITING}"
)
REWRITE_FIRST = (
    "UPDATE durable_events SET type = ?, data = ?, checksum = ? WHERE run_id = ? AND seq = 1"
)
NEXT_GENERATION = (
    "UPDATE durable_runs SET dedupe_key = dedupe_key || '#' || run_id WHERE run_id = ?"
)


def check_debounced(run: NewRun, first: EventRecord, max_wait: float | None) -> None:
    if run.queue is None or run.dedupe_key is None or run.ready_at is None:
        raise ValueError("a debounced run needs a queue, a dedupe_key and a ready_at")
    if first.seq != 1 or first.run_id != run.run_id:
        raise ValueError("a debounced run's first event is its seq 1")
    if max_wait is not None and max_wait < 0:
        raise ValueError("max_wait must be >= 0")


def rearmed_ready_at(run: NewRun, holder_created_at: float, max_wait: float | None) -> float:
    """When the rearmed run may start: the call's ready_at, but no later than max_wait after
    the burst's first call (the holder's creation)."""
    assert run.ready_at is not None
    if max_wait is None:
        return run.ready_at
    return min(run.ready_at, holder_created_at + max_wait)


def rewritten(holder: str, first: EventRecord) -> tuple[object, ...]:
    """REWRITE_FIRST's arguments: the call's first event as the holder's seq 1."""
    event = EventRecord(holder, 1, first.type, first.data, first.created_at)
    return (event.type, event.data, checksum_of(event), holder)


def debounce_run(
    cur: sqlite3.Cursor,
    run: NewRun,
    first: EventRecord,
    max_wait: float | None,
    select_run: str,
    row_to_run: Callable[[Sequence[object]], RunRecord],
) -> tuple[RunRecord, bool]:
    """Rearm the waiting run of the burst (its row, False) or create a new one (its row,
    True); in the writer's transaction."""
    check_debounced(run, first, max_wait)
    found = cur.execute(HOLDER, (run.queue, run.dedupe_key)).fetchone()
    if found is not None:
        holder = row_to_run(cur.execute(select_run, (found[0],)).fetchone())
        ready = rearmed_ready_at(run, holder.created_at, max_wait)
        cur.execute(
            REARM,
            (run.input, run.version, ready, run.created_at, holder.run_id, run.workflow),
        )
        if cur.rowcount == 1:
            cur.execute(REWRITE_FIRST, rewritten(holder.run_id, first))
            return row_to_run(cur.execute(select_run, (holder.run_id,)).fetchone()), False
        cur.execute(NEXT_GENERATION, (holder.run_id,))  # started: a new burst
    return create_queued(cur, run, first, select_run, row_to_run)
