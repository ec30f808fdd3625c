"""Schema version 7's snapshots table reaches a version-6 database on open (SQLite and
PostgreSQL): what it held is intact, and snapshots can be stored and read at once.

The version-6 database is today's schema without what version 7 added (MIGRATION_7_TABLES),
marked version 6: exactly what a version-6 release created."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from pg_helpers import admin, schema_of
from storekit import T0, append, create

from storage import PostgresStore, SnapshotRecord, SQLiteStore, Store
from storage._schema import MIGRATION_7_TABLES, SCHEMA_VERSION


async def written_at_version_7(store: Store) -> None:
    await store.open()
    try:
        await create(store, "old")
        await store.append(append("old", 1, 4))
    finally:
        await store.close()


async def works_after_migration(store: Store) -> None:
    await store.open()
    try:
        assert [e.seq for e in await store.read_events("old")] == [1, 2, 3, 4, 5]
        assert await store.get_snapshot("old") is None
        snap = SnapshotRecord("old", 4, 1, b"state", 123, T0)
        await store.put_snapshot(snap)
        assert await store.get_snapshot("old") == snap
    finally:
        await store.close()


async def test_a_version_6_sqlite_file_gains_the_snapshots_table(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    await written_at_version_7(SQLiteStore(str(path)))

    def back_to_6() -> None:
        with sqlite3.connect(path) as conn:
            for table in MIGRATION_7_TABLES:
                conn.execute(f"DROP TABLE {table.name}")
            conn.execute("UPDATE durable_schema SET version = 6")

    await asyncio.to_thread(back_to_6)
    await works_after_migration(SQLiteStore(str(path)))

    def version() -> list[tuple[int, str]]:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT version, note FROM durable_schema").fetchall()

    assert await asyncio.to_thread(version) == [(SCHEMA_VERSION, "migrated from 6 by durable")]


async def test_a_version_6_postgres_schema_gains_the_snapshots_table(pg_fresh_url: str) -> None:
    await written_at_version_7(PostgresStore.from_url(pg_fresh_url))
    schema = schema_of(pg_fresh_url)
    drops = "; ".join(f'DROP TABLE "{schema}".{t.name}' for t in MIGRATION_7_TABLES)
    await admin(
        pg_fresh_url,
        lambda c: c.execute(f'{drops}; UPDATE "{schema}".durable_schema SET version = 6'),
    )
    # Two stores opening at once: one migrates, the other finds it done.
    first, second = PostgresStore.from_url(pg_fresh_url), PostgresStore.from_url(pg_fresh_url)
    await asyncio.gather(first.open(), second.open())
    await asyncio.gather(first.close(), second.close())
    await works_after_migration(PostgresStore.from_url(pg_fresh_url))
    row = await admin(
        pg_fresh_url, lambda c: c.fetchrow(f'SELECT version, note FROM "{schema}".durable_schema')
    )
    assert tuple(row) == (SCHEMA_VERSION, "migrated from 6 by durable")
