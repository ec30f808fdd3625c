"""The SQL of the updates table both SQL backends share (written with SQLite's `?`; PostgreSQL's
copies are derived by storage._sql_text.numbered), and the SQLite side of an append's update
changes. Below storage._sqlite_ops, which applies an append's changes through it."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from storage._update_records import UpdateChange, UpdateRecord

UPDATE_COLUMNS = "run_id, update_id, name, status, payload, result, error, created_at, updated_at"
SELECT_UPDATE = f"SELECT {UPDATE_COLUMNS} FROM durable_updates WHERE run_id = ? AND update_id = ?"
LIST_UPDATES = (
    f"SELECT {UPDATE_COLUMNS} FROM durable_updates WHERE run_id = ? "
    "ORDER BY created_at, update_id LIMIT ?"
)
INSERT_UPDATE = (
    f"INSERT INTO durable_updates ({UPDATE_COLUMNS}) "
    "VALUES (?, ?, ?, 'requested', ?, NULL, NULL, ?, ?) ON CONFLICT (run_id, update_id) DO NOTHING"
)
# A change applies to an open row only: an outcome is never overwritten.
CHANGE_UPDATE = (
    "UPDATE durable_updates SET status = ?, result = COALESCE(?, result), "
    "error = COALESCE(?, error), updated_at = ? "
    "WHERE run_id = ? AND update_id = ? AND status IN ('requested', 'accepted')"
)


def row_to_update(row: Sequence[object]) -> UpdateRecord:
    return UpdateRecord(*row)  # type: ignore[arg-type]  # column order matches the struct


def change_params(run_id: str, change: UpdateChange) -> tuple[object, ...]:
    return (
        change.status,
        change.result,
        change.error,
        change.at,
        run_id,
        change.update_id,
    )


def apply_changes(cur: sqlite3.Cursor, run_id: str, changes: Sequence[UpdateChange]) -> None:
    """An append's update changes, in its transaction."""
    cur.executemany(CHANGE_UPDATE, [change_params(run_id, c) for c in changes])
