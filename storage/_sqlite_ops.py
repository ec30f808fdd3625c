"""The SQL of every SQLite write, as functions over a sqlite3 cursor, run on the writer thread
inside the batch's transaction. Kept apart from the thread mechanics so each stays small."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from storage._errors import LeaseLostError, RunNotFoundError, SequenceConflictError
from storage._records import (
    Append,
    Claim,
    EventRecord,
    Fence,
    NewRun,
    Release,
    RunRecord,
    check_append,
    created_record,
)

RUN_COLUMNS = (
    "run_id, workflow, version, status, input, result, error, parent_run_id, created_at, "
    "updated_at, finished_at, last_seq, owner, epoch, lease_expires_at, ready_at"
)
_ACTIVE = "('pending', 'running')"

_INSERT_RUN = (
    f"INSERT INTO durable_runs ({RUN_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, NULL, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO NOTHING"
)
_INSERT_EVENT = (
    "INSERT INTO durable_events (run_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)"
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
_FINAL = ("succeeded", "partial", "failed", "cancelled")


def row_to_run(row: Sequence[object]) -> RunRecord:
    return RunRecord(*row)  # type: ignore[arg-type]  # column order matches the struct


def create_run(cur: sqlite3.Cursor, run: NewRun, first: EventRecord) -> tuple[RunRecord, bool]:
    record = created_record(run, first)
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
            first.seq,
            run.owner,
            record.epoch,
            run.lease_expires_at,
            run.created_at,
        ),
    )
    if cur.rowcount == 0:
        row = cur.execute(_SELECT_RUN, (run.run_id,)).fetchone()
        return row_to_run(row), False
    cur.execute(_INSERT_EVENT, (first.run_id, first.seq, first.type, first.data, first.created_at))
    return record, True


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
        cur.executemany(
            _INSERT_EVENT, [(e.run_id, e.seq, e.type, e.data, e.created_at) for e in app.events]
        )


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
        "AND ready_at IS NOT NULL AND ready_at <= ?"
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
        "UPDATE durable_runs SET owner = NULL, lease_expires_at = NULL, "
        f"ready_at = CASE WHEN status IN {_ACTIVE} THEN COALESCE(?, created_at) ELSE NULL END "
        "WHERE run_id = ? AND owner = ? AND epoch = ?",
        [(r.ready_at, r.run_id, r.fence.owner, r.fence.epoch) for r in releases],
    )
