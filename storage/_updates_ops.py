"""Updates' request rows (storage._update_records): the rule, the SQL both SQL backends share,
and the SQLite writer's operations (storage._updates_pg has PostgreSQL's, storage._memory_updates
the memory store's).

Exactly once: the row's primary key (run_id, update_id) admits one request per id ever. A
request inserts the row and the inbox item that carries it to the run in one transaction, and
only if the row is new: a repeated id (a second caller, a caller retrying after a crash) finds
the row and sends nothing; it waits on that row like the first caller. The worker moves the
row on in the commits that write the log (Append.updates): accepted with UpdateAccepted,
completed or failed with UpdateCompleted; rejected with the item's consumption, no event.

Update-with-start creates the run first, in the same transaction, if it does not exist.
"""

from __future__ import annotations

import sqlite3

import msgspec

from storage import _sqlite_ops as ops
from storage._errors import RunNotFoundError, RunStatusError
from storage._records import ACTIVE_STATUSES, EventRecord, NewInboxItem, NewRun, RunRecord
from storage._update_records import NewUpdate, UpdateChange, UpdateRecord
from storage._updates_sql import (
    INSERT_UPDATE,
    SELECT_UPDATE,
    apply_changes,
    row_to_update,
)

# The item carrying an update: its dedupe key keeps one in the inbox per update id.
UPDATE_ITEM_KIND = "update"


class UpdateRequested(msgspec.Struct, frozen=True):
    """What Store.request_update did: the update's row (the existing one if `created` is
    False: nothing was sent), and the run's row (`run_created`: update-with-start created it)."""

    update: UpdateRecord | None  # None: the run exists with another workflow (nothing written)
    created: bool
    run: RunRecord
    run_created: bool = False


def update_item(req: NewUpdate) -> NewInboxItem:
    """The inbox item that carries the update `req` to its run (name: the update id,
    payload: the row's)."""
    return NewInboxItem(
        run_id=req.run_id,
        kind=UPDATE_ITEM_KIND,
        name=req.update_id,
        payload=req.payload,  # the handler name and arguments (opaque here)
        created_at=req.created_at,
        dedupe_key=f"update:{req.update_id}",
    )


def refuse_finished(run: RunRecord) -> None:
    if run.status not in ACTIVE_STATUSES:
        raise RunStatusError(run.run_id, run.status, ACTIVE_STATUSES, action="sent an update")


def request_update(
    cur: sqlite3.Cursor,
    req: NewUpdate,
    start: tuple[NewRun, EventRecord] | None = None,
) -> UpdateRequested:
    """In the writer's transaction (it holds the write lock: read then write is safe)."""
    run_created = False
    if start is not None:
        run, run_created = ops.create_run(cur, start[0], start[1])
        if run.workflow != start[0].workflow:
            return UpdateRequested(None, False, run)
    else:
        found = cur.execute(ops._SELECT_RUN, (req.run_id,)).fetchone()
        if found is None:
            raise RunNotFoundError(req.run_id)
        run = ops.row_to_run(found)
    existing = cur.execute(SELECT_UPDATE, (req.run_id, req.update_id)).fetchone()
    if existing is not None:
        return UpdateRequested(row_to_update(existing), False, run, run_created)
    refuse_finished(run)
    cur.execute(
        INSERT_UPDATE,
        (req.run_id, req.update_id, req.name, req.payload, req.created_at, req.created_at),
    )
    ops.deliver(cur, update_item(req), strict=True)
    row = cur.execute(SELECT_UPDATE, (req.run_id, req.update_id)).fetchone()
    return UpdateRequested(row_to_update(row), True, run, run_created)


def reject_update(cur: sqlite3.Cursor, run_id: str, change: UpdateChange, item_id: int) -> None:
    """An update the run will not take (its validator raised, no handler): the row rejected and
    its item consumed, in one transaction; nothing enters the log."""
    apply_changes(cur, run_id, (change,))
    cur.execute("DELETE FROM durable_inbox WHERE run_id = ? AND id = ?", (run_id, item_id))
