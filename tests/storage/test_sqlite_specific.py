"""What only the SQLite backend promises: its PRAGMAs, group commit, and sharing one file between
two stores (two connections, as two worker processes would have)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from storekit import T0, append, create, event, new_run

from storage import (
    Claim,
    DefinitionConflictError,
    DefinitionRecord,
    EventRecord,
    Fence,
    NewInboxItem,
    NewRun,
    QueueRecord,
    Release,
    ScheduleRecord,
    SQLiteStore,
    open_store,
)
from storage._schema import SCHEMA_VERSION

# The schema as release 1 created it (SQLAlchemy's DDL of the version-1 tables, verbatim).
VERSION_1_DDL = """
CREATE TABLE durable_events (
    run_id VARCHAR(255) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(64) NOT NULL,
    data BLOB NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE durable_runs (
    run_id VARCHAR(255) NOT NULL, workflow VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL, input BLOB NOT NULL, result BLOB, error BLOB,
    parent_run_id VARCHAR(255), created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    finished_at FLOAT, last_seq INTEGER NOT NULL, owner VARCHAR(255), epoch INTEGER NOT NULL,
    lease_expires_at FLOAT, ready_at FLOAT, PRIMARY KEY (run_id)
);
CREATE INDEX ix_durable_runs_claim ON durable_runs (status, ready_at);
CREATE INDEX ix_durable_runs_created ON durable_runs (created_at, run_id);
CREATE INDEX ix_durable_runs_workflow ON durable_runs (workflow, status);
CREATE TABLE durable_schema (
    id INTEGER NOT NULL, version INTEGER NOT NULL, note TEXT, PRIMARY KEY (id)
);
INSERT INTO durable_schema VALUES (1, 1, NULL);
INSERT INTO durable_runs VALUES ('old', 'wf', 'v1', 'running', x'00', NULL, NULL, NULL,
    1000.0, 1000.0, NULL, 1, 'w1', 1, 1030.0, 1000.0);
INSERT INTO durable_events VALUES ('old', 1, 'Started', x'01', 1000.0);
"""

# The schema as release 2 created it (SQLAlchemy's DDL of the version-2 tables, verbatim), with
# a run holding an inbox item and a registered worker.
VERSION_2_DDL = """
CREATE TABLE durable_events (
    run_id VARCHAR(255) NOT NULL, seq INTEGER NOT NULL, type VARCHAR(64) NOT NULL,
    data BLOB NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE durable_inbox (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, run_id VARCHAR(255) NOT NULL,
    kind VARCHAR(64) NOT NULL, name VARCHAR(255) NOT NULL, payload BLOB NOT NULL,
    created_at FLOAT NOT NULL, dedupe_key VARCHAR(255)
);
CREATE INDEX ix_durable_inbox_run ON durable_inbox (run_id, id);
CREATE UNIQUE INDEX ux_durable_inbox_dedupe ON durable_inbox (run_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE TABLE durable_runs (
    run_id VARCHAR(255) NOT NULL, workflow VARCHAR(255) NOT NULL, version VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL, input BLOB NOT NULL, result BLOB, error BLOB,
    parent_run_id VARCHAR(255), created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    finished_at FLOAT, last_seq INTEGER NOT NULL, owner VARCHAR(255), epoch INTEGER NOT NULL,
    lease_expires_at FLOAT, ready_at FLOAT, PRIMARY KEY (run_id)
);
CREATE INDEX ix_durable_runs_claim ON durable_runs (status, ready_at);
CREATE INDEX ix_durable_runs_created ON durable_runs (created_at, run_id);
CREATE INDEX ix_durable_runs_finished ON durable_runs (finished_at);
CREATE INDEX ix_durable_runs_workflow ON durable_runs (workflow, status);
CREATE TABLE durable_schema (
    id INTEGER NOT NULL, version INTEGER NOT NULL, note TEXT, PRIMARY KEY (id)
);
CREATE TABLE durable_workers (
    owner VARCHAR(255) NOT NULL, capabilities TEXT NOT NULL, started_at FLOAT NOT NULL,
    last_seen FLOAT NOT NULL, expires_at FLOAT NOT NULL, PRIMARY KEY (owner)
);
INSERT INTO durable_schema VALUES (1, 2, 'created by durable');
INSERT INTO durable_runs VALUES ('old', 'wf', 'v1', 'pending', x'00', NULL, NULL, NULL,
    1000.0, 1000.0, NULL, 1, NULL, 0, NULL, NULL);
INSERT INTO durable_events VALUES ('old', 1, 'Started', x'01', 1000.0);
INSERT INTO durable_inbox VALUES (7, 'old', 'signal', 'go', x'02', 1001.0, 'k');
INSERT INTO durable_workers VALUES ('w1', '[["wf", "v1"]]', 1000.0, 1000.0, 1010.0);
"""


@asynccontextmanager
async def opened(*stores: SQLiteStore) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for s in stores:
            await s.open()
            stack.push_async_callback(s.close)
        yield


async def writer_pragma(store: SQLiteStore, name: str) -> Any:
    # synchronous is per connection, and the one that matters for durability is the writer's,
    # which only the writer may touch: ask through its queue.
    return await store._w().submit(lambda cur: cur.execute(f"PRAGMA {name}").fetchone()[0])


async def reader_pragma(store: SQLiteStore, name: str) -> Any:
    rows = list(await store._r().execute_fetchall(f"PRAGMA {name}"))
    return rows[0][0]


async def test_default_pragmas_are_wal_and_synchronous_full(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SQLiteStore(str(path))
    async with opened(store):
        assert await writer_pragma(store, "journal_mode") == "wal"
        assert await writer_pragma(store, "synchronous") == 2  # FULL
        # The writer never sleeps in SQLite's busy handler (it may run on the event loop
        # thread); it retries on its own thread instead. Readers do wait, up to busy_timeout.
        assert await writer_pragma(store, "busy_timeout") == 0
        assert await reader_pragma(store, "busy_timeout") == 5000
    # WAL is a property of the file: another process opening it later gets WAL too.
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_url_options_reach_the_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}?synchronous=normal&busy_timeout_ms=1234"
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / "n.db")
    async with opened(store):
        assert await writer_pragma(store, "synchronous") == 1  # NORMAL
        assert await reader_pragma(store, "busy_timeout") == 1234


async def test_stores_opening_a_new_file_together_all_succeed(tmp_path: Path) -> None:
    # Workers booting together on a file that does not exist yet race to create it, switch it
    # to WAL and create the schema. One race is rarely lost, so run many, one file each.
    for i in range(60):
        path = str(tmp_path / f"new{i}.db")
        pair = (SQLiteStore(path), SQLiteStore(path))
        outcomes = await asyncio.gather(*(s.open() for s in pair), return_exceptions=True)
        # gather waited for both opens, so closing now leaves no half-open store behind.
        await asyncio.gather(*(s.close() for s in pair))
        assert outcomes == [None, None], f"round {i}: {outcomes}"
    with sqlite3.connect(tmp_path / "new7.db") as conn:
        assert conn.execute("SELECT version FROM durable_schema").fetchall() == [(SCHEMA_VERSION,)]


async def test_group_commit_batches_writes_of_many_runs(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "g.db"))
    async with opened(store):
        ids = [f"r{i}" for i in range(200)]
        await asyncio.gather(*(store.create_run(new_run(r), event(r, 1)) for r in ids))
        commits_before, writes_before = store.commit_stats
        await asyncio.gather(*(store.append(append(r, 1)) for r in ids))
        commits, writes = store.commit_stats
        assert writes - writes_before == 200
        # One transaction per write would be 200 commits; issued in one go they share a handful.
        assert commits - commits_before <= 10, (commits - commits_before, writes - writes_before)
        for r in ids:
            assert [e.seq for e in await store.read_events(r)] == [1, 2]


async def test_two_stores_on_one_file_never_claim_the_same_run(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    a, b = SQLiteStore(path), SQLiteStore(path)
    async with opened(a, b):
        ids = {f"r{i:03}" for i in range(120)}
        await asyncio.gather(*(a.create_run(new_run(r), event(r, 1)) for r in sorted(ids)))
        by_owner: dict[str, list[Claim]] = {"a": [], "b": []}
        for _ in range(len(ids)):  # bounded, so a claim that never runs dry fails, not hangs
            got_a, got_b = await asyncio.gather(
                a.claim_runs("a", limit=7, lease_ttl=60, now=T0 + 1),
                b.claim_runs("b", limit=7, lease_ttl=60, now=T0 + 1),
            )
            if not got_a and not got_b:
                break
            by_owner["a"] += got_a
            by_owner["b"] += got_b
        taken_a = {c.run.run_id for c in by_owner["a"]}
        taken_b = {c.run.run_id for c in by_owner["b"]}
        assert taken_a.isdisjoint(taken_b)
        assert taken_a | taken_b == ids
        assert len(by_owner["a"]) + len(by_owner["b"]) == len(ids)
        # Both really competed (otherwise this test shows nothing about two connections).
        assert taken_a and taken_b
        for store in (a, b):
            for c in by_owner["a"] + by_owner["b"]:
                row = await store.get_run(c.run.run_id)
                assert row is not None
                assert (row.owner, row.epoch) == (c.fence.owner, c.fence.epoch)
                assert c.fence.epoch == 1


async def test_contended_writes_from_two_stores_never_report_locked(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.db")
    # Each writer meets the other's lock on most commits and must wait it out itself (its
    # connection never sleeps in SQLite's busy handler); 1 ms makes the readers' waits overrun
    # their busy_timeout too.
    a = SQLiteStore(path, busy_timeout_ms=1)
    b = SQLiteStore(path, busy_timeout_ms=1)
    async with opened(a, b):
        runs = {a: [f"a{i}" for i in range(25)], b: [f"b{i}" for i in range(25)]}
        for store, ids in runs.items():
            for r in ids:
                await create(store, r)
        rounds = 40
        for seq in range(1, rounds + 1):
            # Both writer threads commit at once, while each store also reads the runs the
            # other is writing (WAL must not block readers either).
            futures = [s.append(append(r, seq)) for s, ids in runs.items() for r in ids]
            reads = [a.read_events("b0"), b.read_events("a0"), a.get_run("b1"), b.get_run("a1")]
            await asyncio.gather(*futures, *reads)
        for store, ids in runs.items():
            other = b if store is a else a
            for r in ids:
                assert [e.seq for e in await other.read_events(r)] == list(range(1, rounds + 2))


async def test_a_version_1_database_gains_the_new_tables_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_1_DDL)
    store = SQLiteStore(str(path))
    async with opened(store):
        old = await store.get_run("old")
        assert old is not None and old.owner == "w1"
        assert [e.type for e in await store.read_events("old")] == ["Started"]
        sent = await store.send(NewInboxItem("old", "signal", "go", b"x", T0 + 1, "k"))
        assert await store.read_inbox(["old"]) == [sent]
        await store.release_leases([Release("old", Fence("w1", 1), park=True)])
        row = await store.get_run("old")
        assert row is not None and (row.owner, row.ready_at) == (None, T0 + 1)  # item waits
        await store.heartbeat_worker("w2", [("wf", "v1")], now=T0, ttl=10)
        assert [w.owner for w in await store.list_workers(now=T0)] == ["w2"]
        await create(store, "new")
        etl = DefinitionRecord("etl", "1", "fp", "json", "{}", T0)  # version 3's table too
        assert await store.put_definition(etl) == (etl, True)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM durable_schema").fetchall() == [(SCHEMA_VERSION,)]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"ix_durable_runs_finished", "ux_durable_inbox_dedupe"} <= indexes
    # Opening again finds the work done.
    async with opened(SQLiteStore(str(path))):
        pass


async def test_a_version_2_database_gains_the_definitions_table_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(VERSION_2_DDL)
    # Two processes upgrading at once: one migrates, the other finds it done.
    a, b = SQLiteStore(str(path)), SQLiteStore(str(path))
    outcomes = await asyncio.gather(a.open(), b.open(), return_exceptions=True)
    try:
        assert list(outcomes) == [None, None]
        # What version 2 held is intact.
        old = await a.get_run("old")
        assert old is not None and (old.status, old.ready_at) == ("pending", None)
        (item,) = await b.read_inbox(["old"])
        assert (item.id, item.name, item.payload, item.dedupe_key) == (7, "go", b"\x02", "k")
        assert [w.owner for w in await a.list_workers(now=T0)] == ["w1"]
        # The new table works, shared by both.
        assert await b.count_definitions() == 0
        etl = DefinitionRecord("etl", "2", "1a2b3c4d5e6f", "yaml", "name: etl\n", T0)
        assert await a.put_definition(etl) == (etl, True)
        assert await b.put_definition(etl) == (etl, False)
        with pytest.raises(DefinitionConflictError, match=r"^workflow 'etl' version '2' is"):
            await b.put_definition(DefinitionRecord("etl", "2", "other", "yaml", "", T0))
        assert await b.list_definitions() == [etl]
        # And the schedules table of version 5.
        assert await a.list_schedules() == []
        nightly = ScheduleRecord(
            "nightly", "etl", "0 3 * * *", "UTC", "one", 100, 60.0, "skip", False,
            T0 + 60, None, None, False, 0, T0, T0,
        )  # fmt: skip
        assert await b.put_schedule(nightly) == nightly
        assert await a.update_schedule(nightly, 0) and not await b.update_schedule(nightly, 0)
        # And the queues of version 6: the old run is not queued and stays claimable; a
        # queued one waits for its queue, keeps its dedupe key, and is admitted.
        await b.put_queue(QueueRecord("emails", concurrency=1))
        queued = NewRun("q1", "etl", "2", b"", T0, queue="emails", dedupe_key="k")
        assert (await a.create_run(queued, EventRecord("q1", 1, "S", b"", T0)))[1]
        again = NewRun("q2", "etl", "2", b"", T0, queue="emails", dedupe_key="k")
        assert (await b.create_run(again, EventRecord("q2", 1, "S", b"", T0)))[0].run_id == "q1"
        claimed = await b.claim_runs("w9", limit=5, lease_ttl=30.0, now=T0 + 5)
        assert sorted(c.run.run_id for c in claimed) == ["q1"]
        assert (await a.queue_stats("emails", now=T0 + 5)).running == 1
        # And what version 2 did still works: inbox ids go on after the old ones.
        sent = await a.send(NewInboxItem("old", "signal", "again", b"y", T0 + 2))
        assert sent.id == 8
    finally:
        await asyncio.gather(a.close(), b.close())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, note FROM durable_schema").fetchall() == [
            (SCHEMA_VERSION, "migrated from 2 by durable")
        ]
        columns = [r[1] for r in conn.execute("PRAGMA table_info(durable_definitions)")]
        assert columns == ["name", "version", "fingerprint", "format", "source", "created_at"]
        pk = [
            r[1]
            for r in sorted(
                conn.execute("PRAGMA table_info(durable_definitions)"), key=lambda r: r[5]
            )
            if r[5]
        ]
        assert pk == ["name", "version"]
    async with opened(SQLiteStore(str(path))):  # opening again finds the work done
        pass
