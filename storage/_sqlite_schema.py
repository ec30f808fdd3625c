"""The SQLite schema's DDL and migrations: storage._schema's tables compiled by SQLAlchemy's
SQLite dialect, run on a plain sqlite3 connection inside the caller's write transaction
(SQLite's DDL is transactional: a migration that fails leaves the previous version whole).

Loaded only when a database is created or migrated: opening a current one never needs it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable, DDLElement

from storage._checksum import event_checksum
from storage._schema import (
    MIGRATION_2_INDEXES,
    MIGRATION_2_TABLES,
    MIGRATION_3_TABLES,
    MIGRATION_4_COLUMNS,
    MIGRATION_5_TABLES,
    MIGRATION_6_COLUMNS,
    MIGRATION_6_INDEXES,
    MIGRATION_6_TABLES,
    MIGRATION_7_UPDATES,
    SCHEMA_VERSION,
    metadata,
)

_DIALECT = sqlite.dialect()


def _ddl(element: DDLElement) -> str:
    return str(element.compile(dialect=_DIALECT))


def _create_tables(conn: sqlite3.Connection, tables: Sequence[Table]) -> None:
    for table in tables:
        conn.execute(_ddl(CreateTable(table)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            conn.execute(_ddl(CreateIndex(index)))


def create(conn: sqlite3.Connection) -> None:
    """The current schema, in an empty database."""
    _create_tables(conn, metadata.sorted_tables)
    conn.execute(
        "INSERT INTO durable_schema (id, version, note) VALUES (1, ?, 'created by durable')",
        (SCHEMA_VERSION,),
    )


def _to_version_2(conn: sqlite3.Connection) -> None:
    """1 -> 2: the inbox and workers tables, the index prune_runs reads."""
    _create_tables(conn, MIGRATION_2_TABLES)
    for index in MIGRATION_2_INDEXES:
        conn.execute(_ddl(CreateIndex(index)))


def _to_version_3(conn: sqlite3.Connection) -> None:
    """2 -> 3: the workflow definitions table."""
    _create_tables(conn, MIGRATION_3_TABLES)


def _to_version_4(conn: sqlite3.Connection) -> None:
    """3 -> 4: the events' checksum column, computed for every event already stored."""
    for column in MIGRATION_4_COLUMNS:
        kind = column.type.compile(dialect=_DIALECT)
        conn.execute(f"ALTER TABLE {column.table.name} ADD COLUMN {column.name} {kind}")
    conn.create_function("durable_event_checksum", 4, _checksum_or_null, deterministic=True)
    conn.execute(
        "UPDATE durable_events SET checksum = durable_event_checksum(run_id, seq, type, data)"
    )


def _checksum_or_null(run_id: object, seq: object, tag: object, data: object) -> int | None:
    # A row whose columns have the wrong types (only a hand edit makes one) stays unchecked
    # rather than failing the whole migration; decoding it will fail clearly later.
    if (
        isinstance(run_id, str)
        and isinstance(seq, int)
        and isinstance(tag, str)
        and isinstance(data, bytes)
    ):
        return event_checksum(run_id, seq, tag, data)
    return None


def _to_version_5(conn: sqlite3.Connection) -> None:
    """4 -> 5: the schedules table."""
    _create_tables(conn, MIGRATION_5_TABLES)


def _to_version_6(conn: sqlite3.Connection) -> None:
    """5 -> 6: the runs' queue columns and indexes, the queues table."""
    for column in MIGRATION_6_COLUMNS:
        kind = column.type.compile(dialect=_DIALECT)
        conn.execute(f"ALTER TABLE {column.table.name} ADD COLUMN {column.name} {kind}")
    for index in MIGRATION_6_INDEXES:
        conn.execute(_ddl(CreateIndex(index)))
    _create_tables(conn, MIGRATION_6_TABLES)


def _to_version_7(conn: sqlite3.Connection) -> None:
    """6 -> 7: issue 17's tables (the updates table here; the other slices add theirs)."""
    _create_tables(conn, MIGRATION_7_UPDATES)


MIGRATIONS: Mapping[int, Callable[[sqlite3.Connection], None]] = {
    1: _to_version_2,
    2: _to_version_3,
    3: _to_version_4,
    4: _to_version_5,
    5: _to_version_6,
    6: _to_version_7,
}


def migrate(conn: sqlite3.Connection, found: int) -> None:
    """From schema version `found` to SCHEMA_VERSION, one step at a time."""
    for version in range(found, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
    conn.execute(
        "UPDATE durable_schema SET version = ?, note = ? WHERE id = 1",
        (SCHEMA_VERSION, f"migrated from {found} by durable"),
    )
