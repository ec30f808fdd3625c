"""The values table (ctx.set_event): the latest value per (run, key), written with its ValueSet
event in the append's transaction, read by get_event with one indexed lookup.

The SQL is written once with `?` placeholders (SQLite) and numbered for asyncpg. The upsert
replaces a row only with a newer seq, so an older append applied late (or replayed by a tool
that copies logs) can never roll a value back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from storage._records import Append, RunValue
from storage._sql_text import numbered

_COLUMNS = "run_id, key, value, seq, updated_at"
SQLITE_UPSERT = (
    f"INSERT INTO durable_values ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, seq = excluded.seq, "
    "updated_at = excluded.updated_at WHERE excluded.seq > durable_values.seq"
)
SQLITE_GET = f"SELECT {_COLUMNS} FROM durable_values WHERE run_id = ? AND key = ?"
SQLITE_LIST = f"SELECT {_COLUMNS} FROM durable_values WHERE run_id = ? ORDER BY key"
PG_UPSERT = numbered(SQLITE_UPSERT)
PG_GET = numbered(SQLITE_GET)
PG_LIST = numbered(SQLITE_LIST)


def row_to_value(row: Iterable[Any]) -> RunValue:
    run_id, key, value, seq, updated_at = tuple(row)
    return RunValue(run_id, key, bytes(value), seq, updated_at)


def _rows(app: Append) -> list[tuple[Any, ...]]:
    # The append's own run only: a value belongs to the run whose event set it.
    return [(app.run_id, v.key, v.value, v.seq, v.updated_at) for v in app.values]


def sqlite_upsert(cur: sqlite3.Cursor, app: Append) -> None:
    """In the append's transaction, after its events are inserted."""
    if app.values:
        cur.executemany(SQLITE_UPSERT, _rows(app))


async def pg_upsert(conn: Any, app: Append) -> None:
    """In the batch's transaction, once the append's round wrote it."""
    if app.values:
        await conn.executemany(PG_UPSERT, _rows(app))


def memory_upsert(table: dict[tuple[str, str], RunValue], app: Append) -> None:
    for v in app.values:
        found = table.get((app.run_id, v.key))
        if found is None or v.seq > found.seq:
            table[(app.run_id, v.key)] = RunValue(app.run_id, v.key, v.value, v.seq, v.updated_at)
