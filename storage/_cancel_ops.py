"""Ending a queued run that still waits (Store.cancel_waiting): the rule, the SQL both SQL
backends share, and the SQLite writer's operation (storage._cancel_pg has PostgreSQL's,
storage._memory the memory store's).

A queued run that waits (storage._queue_ops: pending, admitted_at NULL) is taken by no claim
until its queue admits it, so a cancel request sent to its inbox would wait for a slot (or
its delay, or a debounce burst) before any executor read it. A waiting run that no worker
ever claimed has done nothing: its log is its first event, no code of it ran. So the engine
ends it itself, with the events and the row update an executor would write for a run
cancelled before its first step (an ordinary Append: the events, the cancelled status and
finished_at, the cancel item consumed, its parent told), written only while the run still
waits. The condition and the write are one transaction: SQLite's writer holds the write lock;
on PostgreSQL the run's row is locked with the condition (an admission that got there first
holds the lock, and the condition is re-read after its commit: the run is admitted, nothing is
written; one that comes after re-checks admitted_at and status: storage._queue_pg._ADMIT).
A run admitted or claimed in the meantime is left as it is: its executor reads the request
from its inbox, as for any run.
"""

from __future__ import annotations

import sqlite3

from storage import _sqlite_ops as ops
from storage._records import FINAL_STATUSES, Append

# The run still waits in its queue and nobody ever read it: never admitted, never claimed (no
# owner; its epoch is 0, which a claim would have raised), its log still its first event only.
STILL_WAITING = (
    "run_id = {p} AND queue IS NOT NULL AND status = 'pending' AND admitted_at IS NULL "
    "AND owner IS NULL AND epoch = 0 AND last_seq = 1"
)
_SQLITE_WAITING = "SELECT 1 FROM durable_runs WHERE " + STILL_WAITING.format(p="?")


def check_cancel_waiting(append: Append) -> None:
    """The append must end the run, without a fence (nobody holds a waiting run's lease)."""
    status = append.update.status if append.update is not None else None
    if (
        status not in FINAL_STATUSES
        or append.fence is not None
        or not append.events
        or append.expected_last_seq != 1
    ):
        raise ValueError(
            f"cancel_waiting of run {append.run_id!r}: the append must follow the run's first "
            f"event (expected_last_seq 1), carry events and a final status (not {status!r}), "
            "and no fence"
        )


def cancel_waiting(cur: sqlite3.Cursor, app: Append) -> bool:
    """Apply `app` if its run still waits (True), else write nothing (False); in the writer's
    transaction, which holds the write lock, so read then write is safe."""
    check_cancel_waiting(app)
    if cur.execute(_SQLITE_WAITING, (app.run_id,)).fetchone() is None:
        return False
    ops.append(cur, app)
    return True
