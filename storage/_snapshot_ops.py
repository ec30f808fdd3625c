"""Store.put_snapshot / get_snapshot: the SQL both SQL backends share (PostgreSQL's
placeholders derived by storage._sql_text.numbered), SQLite's writer operation, and the rule the
memory store follows too (durable._snapshot says what a snapshot is).

A snapshot replaces the run's stored one only if it is newer (a higher seq), and is written
only while the run exists and its log holds that seq: a write racing a prune leaves no orphan,
and a snapshot never stands for events the log lacks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from storage._records import SnapshotRecord

COLUMNS = "run_id, seq, fold_version, data, checksum, created_at"

PUT_SNAPSHOT = (
    f"INSERT INTO durable_snapshots ({COLUMNS}) "
    "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM durable_runs "
    "WHERE run_id = ? AND last_seq >= ?) "
    "ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, "
    "fold_version = excluded.fold_version, data = excluded.data, "
    "checksum = excluded.checksum, created_at = excluded.created_at "
    "WHERE excluded.seq > durable_snapshots.seq"
)
GET_SNAPSHOT = f"SELECT {COLUMNS} FROM durable_snapshots WHERE run_id = ?"


def put_args(record: SnapshotRecord) -> tuple[object, ...]:
    r = record
    return (r.run_id, r.seq, r.fold_version, r.data, r.checksum, r.created_at, r.run_id, r.seq)


def row_to_snapshot(row: Sequence[Any]) -> SnapshotRecord:
    run_id, seq, version, data, checksum, created_at = row
    return SnapshotRecord(run_id, seq, version, bytes(data), checksum, created_at)


def put_snapshot(cur: sqlite3.Cursor, record: SnapshotRecord) -> None:
    cur.execute(PUT_SNAPSHOT, put_args(record))
