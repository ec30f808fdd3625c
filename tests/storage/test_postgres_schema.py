"""PostgreSQL's versioned schema: stores creating a new schema together, a newer schema
refused, migrations in order (a failing one changes nothing), each URL schema a separate store,
databases of older versions migrated on open. (Split from test_postgres_specific.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from pg_helpers import admin, opened, schema_of
from pgserver import PgSession
from storekit import T0, append, create

from storage import (
    DatabaseOpenError,
    DefinitionConflictError,
    DefinitionRecord,
    EventRecord,
    NewInboxItem,
    NewRun,
    PostgresStore,
    QueueRecord,
    ScheduleRecord,
)
from storage._postgres_schema import migrate
from storage._schema import SCHEMA_VERSION

# ---------------------------------------------------------------------------- schema


async def test_stores_opening_a_new_schema_together_all_succeed(pg_fresh_url: str) -> None:
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await create(stores[3], "r")
        assert (await stores[0].get_run("r")) is not None
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    rows = await admin(
        pg_fresh_url,
        lambda c: c.fetch(f'SELECT id, version FROM "{schema_of(pg_fresh_url)}".durable_schema'),
    )
    assert [tuple(r) for r in rows] == [(1, SCHEMA_VERSION)]


async def test_a_newer_schema_is_refused_and_left_alone(pg_fresh_url: str) -> None:
    async with opened(pg_fresh_url) as store:
        await create(store, "r")
    table = f'"{schema_of(pg_fresh_url)}".durable_schema'
    await admin(pg_fresh_url, lambda c: c.execute(f"UPDATE {table} SET version = 99"))
    with pytest.raises(DatabaseOpenError, match="schema version 99, newer than"):
        await PostgresStore.from_url(pg_fresh_url).open()
    version = await admin(pg_fresh_url, lambda c: c.fetchval(f"SELECT version FROM {table}"))
    assert version == 99


async def test_migrations_run_in_order_and_a_failing_one_changes_nothing(
    pg_fresh_url: str,
) -> None:
    schema = schema_of(pg_fresh_url)
    async with opened(pg_fresh_url) as store:
        await create(store, "r")
    # Two made-up releases after the current one.
    now, target = SCHEMA_VERSION, SCHEMA_VERSION + 2
    steps = {
        now: lambda: ["ALTER TABLE durable_runs ADD COLUMN tag text"],
        now + 1: lambda: ["UPDATE durable_runs SET tag = 'v3'"],
    }

    async def run(conn: Any, target: int, migrations: Any) -> int:
        await conn.execute(f'SET search_path = "{schema}"')
        found: int = await migrate(
            conn, schema, create_schema=False, where="db", target=target, migrations=migrations
        )
        return found

    broken = {**steps, now + 1: lambda: ["UPDATE durable_runs SET no_such_column = 1"]}
    with pytest.raises(asyncpg.UndefinedColumnError, match='"no_such_column"'):
        await admin(pg_fresh_url, lambda c: run(c, target, broken))
    columns = await admin(
        pg_fresh_url,
        lambda c: c.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = $1 AND column_name = 'tag'",
            schema,
        ),
    )
    assert columns == 0  # the first step was rolled back with the failing second
    assert await admin(pg_fresh_url, lambda c: run(c, target, steps)) == now
    assert await admin(pg_fresh_url, lambda c: run(c, target, steps)) == target  # already there
    tag = await admin(
        pg_fresh_url, lambda c: c.fetchval(f'SELECT tag FROM "{schema}".durable_runs')
    )
    assert tag == "v3"


async def test_each_url_schema_is_a_separate_store(pg_schema_factory: PgSession) -> None:
    a_url, b_url = pg_schema_factory.fresh_url(), pg_schema_factory.fresh_url()
    async with opened(a_url) as a, opened(b_url) as b:
        await create(a, "r")
        assert await b.get_run("r") is None
        await create(b, "r")  # the same id, another store: no conflict
        await a.append(append("r", 1))
        assert [e.seq for e in await b.read_events("r")] == [1]


# The schema as release 1 created it (SQLAlchemy's PostgreSQL DDL of the version-1 tables).
VERSION_1_DDL = """
CREATE TABLE durable_events (
    run_id VARCHAR(255) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(64) NOT NULL,
    data BYTEA NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (run_id, seq)
);
CREATE TABLE durable_runs (
    run_id VARCHAR(255) NOT NULL, workflow VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL, input BYTEA NOT NULL, result BYTEA, error BYTEA,
    parent_run_id VARCHAR(255), created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    finished_at FLOAT, last_seq INTEGER NOT NULL, owner VARCHAR(255), epoch INTEGER NOT NULL,
    lease_expires_at FLOAT, ready_at FLOAT, PRIMARY KEY (run_id)
);
CREATE INDEX ix_durable_runs_claim ON durable_runs (status, ready_at);
CREATE INDEX ix_durable_runs_created ON durable_runs (created_at, run_id);
CREATE INDEX ix_durable_runs_workflow ON durable_runs (workflow, status);
CREATE TABLE durable_schema (
    id SERIAL NOT NULL, version INTEGER NOT NULL, note TEXT, PRIMARY KEY (id)
);
INSERT INTO durable_schema VALUES (1, 1, 'created by durable');
INSERT INTO durable_runs VALUES ('old', 'wf', 'v1', 'succeeded', '\\x00', NULL, NULL, NULL,
    1000.0, 1000.0, 1005.0, 1, NULL, 1, NULL, NULL);
INSERT INTO durable_events VALUES ('old', 1, 'Started', '\\x01', 1000.0);
"""


async def test_a_version_1_database_is_migrated_on_open(pg_fresh_url: str) -> None:
    schema = schema_of(pg_fresh_url)

    async def make_version_1(conn: Any) -> None:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        await conn.execute(VERSION_1_DDL)

    await admin(pg_fresh_url, make_version_1)
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(3)]
    try:
        # Several workers upgrading at once: one migrates, the others find it done.
        await asyncio.gather(*(s.open() for s in stores))
        store = stores[0]
        await create(store, "new")
        sent = await store.send(NewInboxItem("new", "signal", "go", b"x", T0 + 1, "k"))
        assert await stores[1].read_inbox(["new", "old"]) == [sent]
        await store.heartbeat_worker("w2", [("wf", "v1")], now=T0, ttl=10)
        assert [w.owner for w in await stores[2].list_workers(now=T0)] == ["w2"]
        assert await store.prune_runs(T0 + 10) == 1  # the old run, with its event
        assert await store.get_run("old") is None
        etl = DefinitionRecord("etl", "1", "fp", "json", "{}", T0)  # version 3's table too
        assert await store.put_definition(etl) == (etl, True)
        assert await stores[1].list_definitions() == [etl]
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    table = f'"{schema}".durable_schema'
    version = await admin(pg_fresh_url, lambda c: c.fetchval(f"SELECT version FROM {table}"))
    assert version == SCHEMA_VERSION
    indexes = await admin(
        pg_fresh_url,
        lambda c: c.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema),
    )
    assert {"ix_durable_runs_finished", "ux_durable_inbox_dedupe"} <= {r[0] for r in indexes}


# The schema as release 2 created it (SQLAlchemy's PostgreSQL DDL of the version-2 tables), with
# a run holding an inbox item and a registered worker.
VERSION_2_DDL = """
CREATE TABLE durable_events (
    run_id VARCHAR(255) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(64) NOT NULL,
    data BYTEA NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (run_id, seq)
);
CREATE TABLE durable_inbox (
    id BIGSERIAL NOT NULL, run_id VARCHAR(255) NOT NULL, kind VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL, payload BYTEA NOT NULL, created_at FLOAT NOT NULL,
    dedupe_key VARCHAR(255), PRIMARY KEY (id)
);
CREATE INDEX ix_durable_inbox_run ON durable_inbox (run_id, id);
CREATE UNIQUE INDEX ux_durable_inbox_dedupe ON durable_inbox (run_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE TABLE durable_runs (
    run_id VARCHAR(255) NOT NULL, workflow VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL, input BYTEA NOT NULL, result BYTEA, error BYTEA,
    parent_run_id VARCHAR(255), created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    finished_at FLOAT, last_seq INTEGER NOT NULL, owner VARCHAR(255), epoch INTEGER NOT NULL,
    lease_expires_at FLOAT, ready_at FLOAT, PRIMARY KEY (run_id)
);
CREATE INDEX ix_durable_runs_claim ON durable_runs (status, ready_at);
CREATE INDEX ix_durable_runs_created ON durable_runs (created_at, run_id);
CREATE INDEX ix_durable_runs_finished ON durable_runs (finished_at);
CREATE INDEX ix_durable_runs_workflow ON durable_runs (workflow, status);
CREATE TABLE durable_schema (
    id SERIAL NOT NULL, version INTEGER NOT NULL, note TEXT, PRIMARY KEY (id)
);
CREATE TABLE durable_workers (
    owner VARCHAR(255) NOT NULL, capabilities TEXT NOT NULL, started_at FLOAT NOT NULL,
    last_seen FLOAT NOT NULL, expires_at FLOAT NOT NULL, PRIMARY KEY (owner)
);
INSERT INTO durable_schema VALUES (1, 2, 'created by durable');
INSERT INTO durable_runs VALUES ('old', 'wf', 'v1', 'pending', '\\x00', NULL, NULL, NULL,
    1000.0, 1000.0, NULL, 1, NULL, 0, NULL, NULL);
INSERT INTO durable_events VALUES ('old', 1, 'Started', '\\x01', 1000.0);
INSERT INTO durable_inbox VALUES (7, 'old', 'signal', 'go', '\\x02', 1001.0, 'k');
SELECT setval('durable_inbox_id_seq', 7);
INSERT INTO durable_workers VALUES ('w1', '[["wf", "v1"]]', 1000.0, 1000.0, 1010.0);
"""


async def test_a_version_2_database_is_migrated_on_open(pg_fresh_url: str) -> None:
    schema = schema_of(pg_fresh_url)

    async def make_version_2(conn: Any) -> None:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        await conn.execute(VERSION_2_DDL)

    await admin(pg_fresh_url, make_version_2)
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(3)]
    try:
        # Several workers upgrading at once: one migrates, the others find it done.
        await asyncio.gather(*(s.open() for s in stores))
        a, b, c = stores
        # What version 2 held is intact, and still works.
        old = await a.get_run("old")
        assert old is not None and (old.status, old.ready_at) == ("pending", None)
        (item,) = await b.read_inbox(["old"])
        assert (item.id, item.name, item.payload, item.dedupe_key) == (7, "go", b"\x02", "k")
        assert [w.owner for w in await c.list_workers(now=T0)] == ["w1"]
        sent = await a.send(NewInboxItem("old", "signal", "again", b"y", T0 + 2))
        assert sent.id == 8
        # The new table works, shared by all.
        assert await b.count_definitions() == 0
        etl = DefinitionRecord("etl", "2", "1a2b3c4d5e6f", "yaml", "name: etl\n", T0)
        assert await a.put_definition(etl) == (etl, True)
        assert await b.put_definition(etl) == (etl, False)
        with pytest.raises(DefinitionConflictError, match=r"^workflow 'etl' version '2' is"):
            await c.put_definition(DefinitionRecord("etl", "2", "other", "yaml", "", T0))
        assert await c.list_definitions() == [etl]
        # And the schedules table of version 5.
        assert await a.list_schedules() == []
        nightly = ScheduleRecord(
            "nightly", "etl", "0 3 * * *", "UTC", "one", 100, 60.0, "skip", False,
            T0 + 60, None, None, False, 0, T0, T0,
        )  # fmt: skip
        assert await c.put_schedule(nightly) == nightly
        assert await a.update_schedule(nightly, 0) and not await c.update_schedule(nightly, 0)
        # And the queues of version 6: the old run is not queued and stays claimable; a
        # queued one waits for its queue, keeps its dedupe key, and is admitted.
        await c.put_queue(QueueRecord("emails", concurrency=1))
        queued = NewRun("q1", "etl", "2", b"", T0, queue="emails", dedupe_key="k")
        assert (await a.create_run(queued, EventRecord("q1", 1, "S", b"", T0)))[1]
        again = NewRun("q2", "etl", "2", b"", T0, queue="emails", dedupe_key="k")
        assert (await c.create_run(again, EventRecord("q2", 1, "S", b"", T0)))[0].run_id == "q1"
        claimed = await c.claim_runs("w9", limit=5, lease_ttl=30.0, now=T0 + 5)
        # ("old" too: the signal sent above made it claimable, queues or not.)
        assert sorted(c.run.run_id for c in claimed) == ["old", "q1"]
        assert (await a.queue_stats("emails", now=T0 + 5)).running == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    row = await admin(
        pg_fresh_url, lambda c: c.fetchrow(f'SELECT version, note FROM "{schema}".durable_schema')
    )
    assert tuple(row) == (SCHEMA_VERSION, "migrated from 2 by durable")
    pk = await admin(
        pg_fresh_url,
        lambda c: c.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = $1::regclass AND contype = 'p'",
            f'"{schema}".durable_definitions',
        ),
    )
    assert pk == "PRIMARY KEY (name, version)"
