"""A version-6 database (SQLite file, PostgreSQL schema) opened by this release gains the
updates table (schema version 7): its runs intact, updates then requested and answered."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from pg_helpers import admin, schema_of

from storage import EventRecord, NewRun, NewUpdate, PostgresStore, SQLiteStore, Store
from storage._schema_version import SCHEMA_VERSION

pytestmark = pytest.mark.asyncio

# The tables of version 6; a database is turned back into a version-6 one by dropping the rest.
VERSION_6 = {
    "durable_runs",
    "durable_events",
    "durable_schema",
    "durable_inbox",
    "durable_workers",
    "durable_definitions",
    "durable_schedules",
    "durable_queues",
}


async def seeded(store: Store) -> None:
    await store.open()
    try:
        await store.create_run(
            NewRun("old", "wf", "v1", b"", 1.0), EventRecord("old", 1, "S", b"", 1.0)
        )
    finally:
        await store.close()


async def works(store: Store) -> None:
    await store.open()
    try:
        assert (await store.get_run("old")) is not None
        done = await store.request_update(NewUpdate("old", "u1", "add", b"p", 2.0))
        assert done.created and done.update is not None and done.update.status == "requested"
        assert [i.name for i in await store.read_inbox(["old"])] == ["u1"]
    finally:
        await store.close()


async def test_a_version_6_sqlite_file_gains_the_updates_table(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    await seeded(SQLiteStore(str(path)))
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            if table.startswith("durable_") and table not in VERSION_6:
                conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE durable_schema SET version = 6")
    await works(SQLiteStore(str(path)))
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("SELECT version FROM durable_schema").fetchone()
    assert version == SCHEMA_VERSION == 7


async def test_a_version_6_postgres_schema_gains_the_updates_table(pg_fresh_url: str) -> None:
    await seeded(PostgresStore.from_url(pg_fresh_url))
    schema = schema_of(pg_fresh_url)

    async def back_to_6(conn: Any) -> None:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        for row in rows:
            name = row["table_name"]
            if name.startswith("durable_") and name not in VERSION_6:
                await conn.execute(f'DROP TABLE "{schema}"."{name}"')
        await conn.execute(f'UPDATE "{schema}".durable_schema SET version = 6')

    await admin(pg_fresh_url, back_to_6)
    await works(PostgresStore.from_url(pg_fresh_url))

    async def version(conn: Any) -> None:
        found = await conn.fetchval(f'SELECT version FROM "{schema}".durable_schema')
        assert found == SCHEMA_VERSION

    await admin(pg_fresh_url, version)
