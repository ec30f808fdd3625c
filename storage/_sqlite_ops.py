"""The SQL of every SQLite write, as functions over a sqlite3 cursor, run on the writer thread
inside the batch's transaction. Kept apart from the thread mechanics so each stays small."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence

from storage import _completions as completions
from storage import _queue_ops as queues
from storage import _streams_ops as streams
from storage import _values_ops as values
from storage._checksum import checksum_of
from storage._errors import LeaseLostError, RunNotFoundError, SequenceConflictError
from storage._records import (
    FINAL_STATUSES,
    FORGET_WORKERS_AFTER,
    Append,
    Claim,
    DefinitionRecord,
    EventRecord,
    Fence,
    InboxItem,
    NewInboxItem,
    NewRun,
    Release,
    RunRecord,
    already_stored,
    check_append,
    check_history,
    check_reopen,
    created_record,
)
from storage._schema_version import RUN_TABLES
from storage._updates_sql import apply_changes

_INSERT_RUN_COLUMNS = (
    "run_id, workflow, version, status, input, result, error, parent_run_id, created_at, "
    "updated_at, finished_at, last_seq, owner, epoch, lease_expires_at, ready_at"
)
# Reads and RETURNINGs also give the run's queue (RunRecord.queue); a plain create writes none.
RUN_COLUMNS = _INSERT_RUN_COLUMNS + ", queue"
_ACTIVE = "('pending', 'running')"

_INSERT_RUN = (
    f"INSERT INTO durable_runs ({_INSERT_RUN_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, NULL, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO NOTHING"
)
_INSERT_EVENT = (
    "INSERT INTO durable_events (run_id, seq, type, data, created_at, checksum) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
SELECT_EVENTS = (
    "SELECT seq, type, data, created_at, checksum FROM durable_events "
    "WHERE run_id = ? AND seq > ? ORDER BY seq"
)
_SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM durable_runs WHERE run_id = ?"
# One statement checks the expected seq, the fence, and updates the row: rowcount 0 = refused.
_UPDATE_ON_APPEND = (
    "UPDATE durable_runs SET last_seq = ?, updated_at = ?, status = COALESCE(?, status), "
    "result = COALESCE(?, result), error = COALESCE(?, error), "
    "finished_at = COALESCE(?, finished_at), "
    "ready_at = CASE WHEN ? THEN NULL ELSE ready_at END "
    "WHERE run_id = ? AND last_seq = ?"
)
_FENCED = " AND owner = ? AND epoch = ?"
_REOPEN_STATE = "SELECT status, last_seq FROM durable_runs WHERE run_id = ?"
# A reopened run: unfinished, unowned, claimable at once; the epoch stays (a claim bumps it).
# A queued one waits in its queue again (admitted_at NULL): a new admission, within the limits.
_REOPEN = (
    "UPDATE durable_runs SET status = 'pending', result = NULL, error = NULL, admitted_at = NULL, "
    "finished_at = NULL, owner = NULL, lease_expires_at = NULL, ready_at = ?, updated_at = ?, "
    f"last_seq = ? WHERE run_id = ? RETURNING {RUN_COLUMNS}"
)
_FINAL = tuple(sorted(FINAL_STATUSES))
_FINAL_SQL = "(" + ", ".join(f"'{s}'" for s in _FINAL) + ")"

INBOX_COLUMNS = "id, run_id, kind, name, payload, created_at, dedupe_key"
# The partial unique index on (run_id, dedupe_key) is the conflict target: a keyed item already
# in the inbox makes the insert a no-op (RETURNING nothing).
_INSERT_INBOX = (
    "INSERT INTO durable_inbox (run_id, kind, name, payload, created_at, dedupe_key) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id"
)
_SELECT_INBOX_KEYED = (
    f"SELECT {INBOX_COLUMNS} FROM durable_inbox WHERE run_id = ? AND dedupe_key = ?"
)
# Wake: an unfinished run is ready no later than the item's arrival.
_WAKE = (
    f"UPDATE durable_runs SET ready_at = ? WHERE run_id = ? AND status IN {_ACTIVE} "
    "AND (ready_at IS NULL OR ready_at > ?)"
)
_CONSUME = "DELETE FROM durable_inbox WHERE run_id = ? AND id IN (SELECT value FROM json_each(?))"
# A release: ready at its ready_at (NULL: created_at, i.e. now) or never if parked, but never
# later than the oldest item still in the inbox (SQLite's min() of a NULL is NULL).
_OLDEST_ITEM = (
    "(SELECT min(i.created_at) FROM durable_inbox AS i WHERE i.run_id = durable_runs.run_id)"
)
_RELEASE = (
    "UPDATE durable_runs SET owner = NULL, lease_expires_at = NULL, ready_at = CASE "
    f"WHEN status NOT IN {_ACTIVE} THEN NULL WHEN :park THEN {_OLDEST_ITEM} "
    "ELSE min(COALESCE(:ready_at, created_at), "
    f"COALESCE({_OLDEST_ITEM}, :ready_at, created_at)) END "
    "WHERE run_id = :run_id AND owner = :owner AND epoch = :epoch"
)
_PRUNABLE = (
    f"SELECT r.run_id FROM durable_runs AS r WHERE r.status IN {_FINAL_SQL} "
    "AND r.finished_at < ? AND NOT EXISTS (SELECT 1 FROM durable_runs AS p "
    f"WHERE p.run_id = r.parent_run_id AND p.status IN {_ACTIVE}) "
    "ORDER BY r.finished_at, r.run_id LIMIT ?"
)
_HEARTBEAT = (
    "INSERT INTO durable_workers (owner, capabilities, started_at, last_seen, expires_at) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (owner) DO UPDATE SET "
    "capabilities = excluded.capabilities, last_seen = excluded.last_seen, "
    "expires_at = excluded.expires_at"
)

DEFINITION_COLUMNS = "name, version, fingerprint, format, source, created_at"
# The primary key (name, version) is the conflict target: a stored definition is never replaced.
_INSERT_DEFINITION = (
    f"INSERT INTO durable_definitions ({DEFINITION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (name, version) DO NOTHING"
)
SELECT_DEFINITION = (
    f"SELECT {DEFINITION_COLUMNS} FROM durable_definitions WHERE name = ? AND version = ?"
)


def event_row(e: EventRecord) -> tuple[object, ...]:
    return (e.run_id, e.seq, e.type, e.data, e.created_at, checksum_of(e))


def row_to_run(row: Sequence[object]) -> RunRecord:
    return RunRecord(*row)  # type: ignore[arg-type]  # column order matches the struct


def create_run(
    cur: sqlite3.Cursor, run: NewRun, first: EventRecord, history: Sequence[EventRecord] = ()
) -> tuple[RunRecord, bool]:
    if history:
        check_history(run, first, history)
    if run.queue is not None and not history:
        return queues.create_queued(cur, run, first, _SELECT_RUN, row_to_run)
    record = created_record(run, first, history)
    cur.execute(
        _INSERT_RUN,
        (
            run.run_id,
            run.workflow,
            run.version,
            record.status,
            run.input,
            run.parent_run_id,
            run.created_at,
            run.created_at,
            record.last_seq,
            run.owner,
            record.epoch,
            run.lease_expires_at,
            run.created_at,
        ),
    )
    if cur.rowcount == 0:
        row = cur.execute(_SELECT_RUN, (run.run_id,)).fetchone()
        return row_to_run(row), False
    cur.execute(_INSERT_EVENT, event_row(first))
    if history:
        cur.executemany(_INSERT_EVENT, [event_row(e) for e in history])
    return record, True


def reopen(
    cur: sqlite3.Cursor, run_id: str, event: EventRecord, statuses: Collection[str], now: float
) -> RunRecord:
    # Read then write is safe: the writer's BEGIN IMMEDIATE holds the database's write lock.
    found = cur.execute(_REOPEN_STATE, (run_id,)).fetchone()
    check_reopen(run_id, event, None if found is None else (found[0], found[1]), statuses)
    queues.check_reopen_key(cur, run_id)
    updated = cur.execute(_REOPEN, (now, now, event.seq, run_id)).fetchone()
    cur.execute(_INSERT_EVENT, event_row(event))
    return row_to_run(updated)


def append(cur: sqlite3.Cursor, app: Append) -> None:
    check_append(app)
    if app.events:
        last = app.events[-1]
        new_seq, updated_at = last.seq, last.created_at
    else:
        new_seq, updated_at = app.expected_last_seq, None
    upd = app.update
    status = upd.status if upd else None
    params: tuple[object, ...] = (
        new_seq,
        updated_at,
        status,
        upd.result if upd else None,
        upd.error if upd else None,
        upd.finished_at if upd else None,
        status in _FINAL,
        app.run_id,
        app.expected_last_seq,
    )
    sql = _UPDATE_ON_APPEND
    if app.fence is not None:
        sql += _FENCED
        params += (app.fence.owner, app.fence.epoch)
    if updated_at is None:
        # Nothing to write: only verify, without touching updated_at.
        sql = sql.replace("updated_at = ?", "updated_at = COALESCE(?, updated_at)", 1)
    cur.execute(sql, params)
    if cur.rowcount == 0:
        raise _why_refused(cur, app)
    if app.events:
        cur.executemany(_INSERT_EVENT, [event_row(e) for e in app.events])
    if app.consume:
        cur.execute(_CONSUME, (app.run_id, json.dumps(list(app.consume))))
    for item in app.send:
        deliver(cur, item, strict=False)
    if app.completions:
        cur.executemany(
            completions.INSERT, [completions.insert_args(app.run_id, c) for c in app.completions]
        )
    values.sqlite_upsert(cur, app)
    if app.stream:
        streams.sqlite_project(cur, app.run_id, app.stream)
    if app.updates:
        apply_changes(cur, app.run_id, app.updates)


def send(cur: sqlite3.Cursor, item: NewInboxItem) -> InboxItem:
    sent = deliver(cur, item, strict=True)
    assert sent is not None
    return sent


def deliver(cur: sqlite3.Cursor, item: NewInboxItem, *, strict: bool) -> InboxItem | None:
    """Insert (or find, by dedupe key) an inbox item and wake its run. A missing run raises
    RunNotFoundError before anything is written if strict, else the item is skipped (None)."""
    if (
        cur.execute("SELECT 1 FROM durable_runs WHERE run_id = ?", (item.run_id,)).fetchone()
        is None
    ):
        if strict:
            raise RunNotFoundError(item.run_id)
        return None
    inserted = cur.execute(
        _INSERT_INBOX,
        (item.run_id, item.kind, item.name, item.payload, item.created_at, item.dedupe_key),
    ).fetchall()
    if inserted:
        stored = item.stored(inserted[0][0])
    else:
        stored = row_to_item(
            cur.execute(_SELECT_INBOX_KEYED, (item.run_id, item.dedupe_key)).fetchone()
        )
    cur.execute(_WAKE, (item.created_at, item.run_id, item.created_at))
    return stored


def row_to_item(row: Sequence[object]) -> InboxItem:
    return InboxItem(*row)  # type: ignore[arg-type]  # column order matches the struct


def _why_refused(cur: sqlite3.Cursor, app: Append) -> Exception:
    row = cur.execute(
        "SELECT last_seq, owner, epoch FROM durable_runs WHERE run_id = ?", (app.run_id,)
    ).fetchone()
    if row is None:
        return RunNotFoundError(app.run_id)
    last_seq, owner, epoch = row
    fence = app.fence
    if fence is not None and (owner != fence.owner or epoch != fence.epoch):
        return LeaseLostError(app.run_id, fence.owner, fence.epoch, owner, epoch)
    return SequenceConflictError(app.run_id, app.expected_last_seq, last_seq)


def claim(
    cur: sqlite3.Cursor,
    owner: str,
    limit: int,
    lease_ttl: float,
    now: float,
    eligible: Sequence[tuple[str, str]] | None,
    exclude: Sequence[str] = (),
) -> list[Claim]:
    if eligible is not None and not eligible:
        return []
    where = (
        f"status IN {_ACTIVE} AND (owner IS NULL OR lease_expires_at < ?) "
        f"AND ready_at IS NOT NULL AND ready_at <= ? AND {queues.ADMITTED}"
    )
    params: list[object] = [owner, now + lease_ttl, now, now]
    if eligible is not None:
        where += (
            " AND (workflow, version) IN (VALUES " + ", ".join(["(?, ?)"] * len(eligible)) + ")"
        )
        for wf, ver in eligible:
            params += [wf, ver]
    if exclude:
        # One JSON parameter however many runs the claimer executes.
        where += " AND run_id NOT IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(exclude)))
    params.append(limit)
    rows = cur.execute(
        "UPDATE durable_runs SET owner = ?, epoch = epoch + 1, lease_expires_at = ? "
        f"WHERE run_id IN (SELECT run_id FROM durable_runs WHERE {where} "
        "ORDER BY ready_at, created_at LIMIT ?) "
        f"RETURNING {RUN_COLUMNS}",
        params,
    ).fetchall()
    claims = [Claim(run=row_to_run(r), fence=Fence(owner, r[13])) for r in rows]
    # Then the queues admit what they can into the slots left (storage._queue_ops).
    claims += queues.admit(
        cur, owner, limit - len(claims), lease_ttl, now, eligible, RUN_COLUMNS, row_to_run
    )
    claims.sort(key=lambda c: (c.run.ready_at or 0.0, c.run.created_at, c.run.run_id))
    return claims


def renew(
    cur: sqlite3.Cursor,
    owner: str,
    lease_ttl: float,
    now: float,
    run_ids: Sequence[str] | None = None,
) -> int:
    sql = f"UPDATE durable_runs SET lease_expires_at = ? WHERE owner = ? AND status IN {_ACTIVE}"
    params: tuple[object, ...] = (now + lease_ttl, owner)
    if run_ids is not None:
        sql += " AND run_id IN (SELECT value FROM json_each(?))"
        params += (json.dumps(list(run_ids)),)
    cur.execute(sql, params)
    return cur.rowcount


def release(cur: sqlite3.Cursor, releases: Sequence[Release]) -> None:
    cur.executemany(
        _RELEASE,
        [
            {
                "park": r.park,
                "ready_at": r.ready_at,
                "run_id": r.run_id,
                "owner": r.fence.owner,
                "epoch": r.fence.epoch,
            }
            for r in releases
        ],
    )


def prune(cur: sqlite3.Cursor, finished_before: float, limit: int) -> int:
    ids = [r[0] for r in cur.execute(_PRUNABLE, (finished_before, max(limit, 0))).fetchall()]
    if not ids:
        return 0
    doomed = json.dumps(ids)
    for table in (*RUN_TABLES, "durable_runs"):
        cur.execute(
            f"DELETE FROM {table} WHERE run_id IN (SELECT value FROM json_each(?))", (doomed,)
        )
    return len(ids)


def heartbeat_worker(
    cur: sqlite3.Cursor, owner: str, capabilities: str, now: float, ttl: float
) -> None:
    cur.execute(_HEARTBEAT, (owner, capabilities, now, now, now + ttl))
    cur.execute("DELETE FROM durable_workers WHERE expires_at < ?", (now - FORGET_WORKERS_AFTER,))


def remove_worker(cur: sqlite3.Cursor, owner: str) -> None:
    cur.execute("DELETE FROM durable_workers WHERE owner = ?", (owner,))


def put_definition(cur: sqlite3.Cursor, record: DefinitionRecord) -> tuple[DefinitionRecord, bool]:
    # Insert-or-find in one write transaction (BEGIN IMMEDIATE holds the database's write lock,
    # across processes): the row found is the one the insert conflicted with.
    cur.execute(
        _INSERT_DEFINITION,
        (
            record.name,
            record.version,
            record.fingerprint,
            record.format,
            record.source,
            record.created_at,
        ),
    )
    if cur.rowcount == 1:
        return record, True
    row = cur.execute(SELECT_DEFINITION, (record.name, record.version)).fetchone()
    return already_stored(row_to_definition(row), record), False


def row_to_definition(row: Sequence[object]) -> DefinitionRecord:
    return DefinitionRecord(*row)  # type: ignore[arg-type]  # column order matches the struct
