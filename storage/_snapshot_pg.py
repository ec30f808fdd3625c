"""PostgreSQL's Store.put_snapshot / get_snapshot (storage._snapshot_ops has the rule): single
statements on a pooled connection, outside the writer, so a snapshot never joins (or delays) a
group commit of the runs' appends."""

from __future__ import annotations

from typing import Any

from storage._records import SnapshotRecord
from storage._snapshot_ops import COLUMNS, GET_SNAPSHOT, put_args, row_to_snapshot
from storage._sql_text import numbered

# The placeholders typed: in a SELECT list PostgreSQL would not infer them from the columns.
PUT_SNAPSHOT = (
    f"INSERT INTO durable_snapshots ({COLUMNS}) "
    "SELECT $1::text, $2::int4, $3::int4, $4::bytea, $5::int8, $6::float8 "
    "WHERE EXISTS (SELECT 1 FROM durable_runs WHERE run_id = $1 AND last_seq >= $2) "
    "ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, "
    "fold_version = excluded.fold_version, data = excluded.data, "
    "checksum = excluded.checksum, created_at = excluded.created_at "
    "WHERE excluded.seq > durable_snapshots.seq"
)
GET = numbered(GET_SNAPSHOT)


class PostgresSnapshots:
    """PostgresStore's snapshot methods (a base class: the store's module is at its size)."""

    async def _execute(self, during: str, sql: str, *args: object) -> Any:
        raise NotImplementedError  # PostgresStore's

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        raise NotImplementedError  # PostgresStore's

    async def put_snapshot(self, record: SnapshotRecord) -> None:
        await self._execute("put_snapshot", PUT_SNAPSHOT, *put_args(record)[:6])

    async def get_snapshot(self, run_id: str) -> SnapshotRecord | None:
        rows = await self._fetch(GET, run_id)
        return row_to_snapshot(tuple(rows[0])) if rows else None
