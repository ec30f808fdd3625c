"""PostgreSQL: a version-3 database gains the events' checksum column, with the checksum of every
event already stored computed during the migration (in batches, by several workers at once)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pg_helpers import admin, schema_of
from storekit import append, create
from test_postgres_schema import VERSION_2_DDL

from storage import EventChecksumError, PostgresStore
from storage import _postgres_schema as pg_schema
from storage._schema import SCHEMA_VERSION

# The schema as release 3 created it: release 2's, plus the definitions table. Events of two
# runs, so that a small batch size walks several batches across runs.
VERSION_3_DDL = (
    VERSION_2_DDL.replace(
        "INSERT INTO durable_schema VALUES (1, 2, 'created by durable');",
        "INSERT INTO durable_schema VALUES (1, 3, 'created by durable');",
    )
    + """
CREATE TABLE durable_definitions (
    name VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL, fingerprint VARCHAR(64) NOT NULL,
    format VARCHAR(16) NOT NULL, source TEXT NOT NULL, created_at FLOAT NOT NULL,
    PRIMARY KEY (name, version)
);
INSERT INTO durable_runs VALUES ('two', 'wf', 'v1', 'pending', '\\x00', NULL, NULL, NULL,
    1000.0, 1000.0, NULL, 4, NULL, 0, NULL, NULL);
INSERT INTO durable_events VALUES ('two', 1, 'Started', '\\x', 1000.0);
INSERT INTO durable_events VALUES ('two', 2, 'E', '\\x00ff', 1001.0);
INSERT INTO durable_events VALUES ('two', 3, 'E', '\\x0102', 1002.0);
INSERT INTO durable_events VALUES ('two', 4, 'E', '\\x03', 1003.0);
"""
)


async def test_a_version_3_database_gains_event_checksums_on_open(
    pg_fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "'created by durable');" in VERSION_2_DDL  # the replace above changed something
    schema = schema_of(pg_fresh_url)

    async def make_version_3(conn: Any) -> None:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        await conn.execute(VERSION_3_DDL)

    await admin(pg_fresh_url, make_version_3)
    monkeypatch.setattr(pg_schema, "_FILL_BATCH", 2)
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(3)]
    try:
        # Several workers upgrading at once: one migrates, the others find it done.
        await asyncio.gather(*(s.open() for s in stores))
        a, b, c = stores
        assert [(e.seq, e.data) for e in await a.read_events("old")] == [(1, b"\x01")]
        two = [e.data for e in await b.read_events("two")]
        assert two == [b"", b"\x00\xff", b"\x01\x02", b"\x03"]
        await c.append(append("two", 4))
        await create(a, "new")
    finally:
        await asyncio.gather(*(s.close() for s in stores))

    async def check(conn: Any) -> Any:
        table = f'"{schema}"'
        note = await conn.fetchrow(f"SELECT version, note FROM {table}.durable_schema")
        unchecked = await conn.fetchval(
            f"SELECT count(*) FROM {table}.durable_events WHERE checksum IS NULL"
        )
        # The old events' checksums were computed: a change to one is now caught.
        await conn.execute(
            f"UPDATE {table}.durable_events SET data = '\\x09' WHERE run_id = 'two' AND seq = 3"
        )
        return tuple(note), unchecked

    assert await admin(pg_fresh_url, check) == (
        (SCHEMA_VERSION, "migrated from 3 by durable"),
        0,
    )
    store = PostgresStore.from_url(pg_fresh_url)
    await store.open()
    try:
        with pytest.raises(EventChecksumError, match=r"^run 'two': event #3 ") as caught:
            await store.read_events("two")
        assert (caught.value.run_id, caught.value.seq) == ("two", 3)
        assert len(await store.read_events("two", after_seq=3)) == 2
    finally:
        await store.close()
