"""Schema version 7's values table reaches a version-6 database on open (SQLite and
PostgreSQL): the database is made version 6 by dropping the table and stepping the version
back, then reopened by the current code."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pg_helpers import admin, opened, schema_of
from storekit import create, event, version_6_statements

from storage import Append, PostgresStore, RunValue, SQLiteStore, Store
from storage._schema import SCHEMA_VERSION


async def _round_trip(store: Store) -> None:
    await create(store, "r")
    e = event("r", 2, "ValueSet")
    await store.append(Append("r", (e,), 1, values=(RunValue("r", "k", b"v", 2, e.created_at),)))
    assert (await store.get_value("r", "k")) == RunValue("r", "k", b"v", 2, e.created_at)


async def test_a_version_6_sqlite_file_gets_the_values_table(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        for statement in version_6_statements():
            conn.execute(statement)
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await _round_trip(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, note FROM durable_schema").fetchall() == [
            (SCHEMA_VERSION, "migrated from 6 by durable")
        ]


async def test_a_version_6_postgres_schema_gets_the_values_table(pg_fresh_url: str) -> None:
    async with opened(pg_fresh_url):
        pass
    schema = schema_of(pg_fresh_url)

    async def step_back(conn: Any) -> None:
        for statement in version_6_statements(schema):
            await conn.execute(statement)

    await admin(pg_fresh_url, step_back)
    store = PostgresStore.from_url(pg_fresh_url)
    await store.open()
    try:
        await _round_trip(store)
    finally:
        await store.close()
    version = await admin(
        pg_fresh_url, lambda c: c.fetchval(f'SELECT version FROM "{schema}".durable_schema')
    )
    assert version == SCHEMA_VERSION
