"""Schema 6 -> 7 (durable_completions): a version-6 database, SQLite or PostgreSQL, opened by
this release gains the table, keeps its runs, and takes external waits at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from storekit import T0, event, new_run, version_6_statements

from storage import Append, Fence, NewCompletion, PostgresStore, SQLiteStore, Store, open_store
from storage._schema import SCHEMA_VERSION


async def _seed(store: Store) -> None:
    await store.open()
    try:
        await store.create_run(
            new_run("old", owner="w", lease_expires_at=T0 + 1e9), event("old", 1)
        )
    finally:
        await store.close()


async def _check_migrated(store: Store) -> None:
    await store.open()
    try:
        run = await store.get_run("old")
        assert run is not None and run.last_seq == 1
        wait = NewCompletion(pos=0, name="w", nonce="n", deadline=None, created_at=T0)
        await store.append(
            Append("old", (event("old", 2),), 1, fence=Fence("w", run.epoch), completions=(wait,))
        )
        [row] = await store.list_completions("old")
        assert row.status == "waiting"
    finally:
        await store.close()


async def test_a_version_6_sqlite_file_gains_completions(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    await _seed(SQLiteStore(str(path)))
    with sqlite3.connect(path) as conn:  # back to version 6: as the previous release left it
        for statement in version_6_statements():
            conn.execute(statement)
    await _check_migrated(SQLiteStore(str(path)))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, note FROM durable_schema").fetchall() == [
            (SCHEMA_VERSION, "migrated from 6 by durable")
        ]


async def test_a_version_6_postgres_schema_gains_completions(pg_fresh_url: str) -> None:
    await _seed(open_store(pg_fresh_url))
    store = open_store(pg_fresh_url)
    assert isinstance(store, PostgresStore)
    schema = pg_fresh_url.split("schema=")[1].split("&")[0]
    conn = await asyncpg.connect(pg_fresh_url.split("?")[0])
    try:
        for statement in version_6_statements(schema):
            await conn.execute(statement)
    finally:
        await conn.close()
    await _check_migrated(store)
    conn = await asyncpg.connect(pg_fresh_url.split("?")[0])
    try:
        row = await conn.fetchrow(f'SELECT version, note FROM "{schema}".durable_schema')
        assert tuple(row) == (SCHEMA_VERSION, "migrated from 6 by durable")
    finally:
        await conn.close()
