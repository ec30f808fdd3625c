"""A version-6 database (before streams) is migrated to version 7 on open, on SQLite and on
PostgreSQL: the streams table appears, the runs already stored are kept and can stream."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from pg_helpers import admin, schema_of
from storekit import T0, create, version_6_statements

from storage import PostgresStore, SQLiteStore, Store, StreamKey, StreamRow
from storage._schema import SCHEMA_VERSION


async def write_and_read(store: Store) -> None:
    claims = await store.claim_runs("w", limit=1, lease_ttl=30, now=T0 + 1)
    fence = claims[0].fence
    await store.write_stream("old", fence, [StreamRow("k", "s1.0", b"v", T0)])
    assert await store.stream_keys("old") == [StreamKey("k", 1, False)]


async def test_a_version_6_sqlite_file_gets_the_streams_table(tmp_path: Path) -> None:
    path = tmp_path / "v6.db"
    store = SQLiteStore(str(path))
    await store.open()
    await create(store, "old")
    await store.close()
    # Back to version 6: as a release before streams left it.
    with sqlite3.connect(path) as conn:
        for statement in version_6_statements():
            conn.execute(statement)
    assert SCHEMA_VERSION == 7
    store = SQLiteStore(str(path))
    await store.open()
    try:
        assert (await store.get_run("old")) is not None
        await write_and_read(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT version, note FROM durable_schema").fetchone()
    assert row == (7, "migrated from 6 by durable")


async def test_a_version_6_postgres_schema_gets_the_streams_table(pg_fresh_url: str) -> None:
    store = PostgresStore.from_url(pg_fresh_url)
    await store.open()
    await create(store, "old")
    await store.close()
    schema = schema_of(pg_fresh_url)

    async def back_to_6(conn: Any) -> None:
        for statement in version_6_statements(schema):
            await conn.execute(statement)

    await admin(pg_fresh_url, back_to_6)
    store = PostgresStore.from_url(pg_fresh_url)
    await store.open()
    try:
        assert (await store.get_run("old")) is not None
        await write_and_read(store)
    finally:
        await store.close()

    async def version(conn: Any) -> Any:
        return await conn.fetchrow(f'SELECT version, note FROM "{schema}".durable_schema')

    assert tuple(await admin(pg_fresh_url, version)) == (7, "migrated from 6 by durable")
