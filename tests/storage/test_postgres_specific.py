"""What only the PostgreSQL backend has: a bounded pool, several processes' stores on one
database, SKIP LOCKED claims, LISTEN/NOTIFY, versioned schema creation, the driver's errors.
(Everything the backends share is in test_conformance.py, run against PostgreSQL there too.)"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from pgserver import PgSession
from storekit import T0, append, create, event, new_run

from storage import (
    Append,
    DatabaseOpenError,
    DatabaseUnavailableError,
    DefinitionConflictError,
    DefinitionRecord,
    EventRecord,
    NewInboxItem,
    NewRun,
    PostgresStore,
    QueueRecord,
    RunRecord,
    RunStatusError,
    RunUpdate,
    ScheduleRecord,
    SequenceConflictError,
    Store,
    open_store,
)
from storage._postgres_schema import migrate
from storage._schema import SCHEMA_VERSION


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore.from_url(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def admin(url: str, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run fn on a plain asyncpg connection to the test server (outside any store)."""
    conn = await asyncpg.connect(url.split("?", 1)[0])
    try:
        return await fn(conn)
    finally:
        await conn.close()


def schema_of(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


# ---------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg", "PostgreSQL"])
def test_postgres_urls_open_a_postgres_store_with_the_password_masked(scheme: str) -> None:
    store = open_store(f"{scheme}://me:hunter2@db.example:6432/prod?pool_size=4&schema=tenant_a")
    assert isinstance(store, PostgresStore)
    assert store.pool_size == 4
    assert "hunter2" not in store.url
    assert store.url.startswith("postgresql://me:***@db.example:6432/prod?")
    assert store.channel == "durable_runs_tenant_a"
    # libpq options (and a password in the query) pass through to the driver, masked too.
    other = open_store("postgresql://me@db/prod?sslmode=disable&password=hunter2")
    assert "sslmode=disable" in other.url and "hunter2" not in other.url


# ---------------------------------------------------------------------------- errors


async def test_nothing_listening_is_database_unavailable() -> None:
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        store = PostgresStore.from_url(f"postgresql://u:hunter2@127.0.0.1:{port}/db")
        with pytest.raises(DatabaseUnavailableError, match=f"127.0.0.1:{port}") as info:
            await store.open()
    assert "hunter2" not in str(info.value)


async def test_missing_database_is_database_open_error(pg_url: str) -> None:
    url = pg_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(DatabaseOpenError, match="database does not exist") as info:
        await PostgresStore.from_url(url).open()
    assert "no_such_db" in str(info.value)
    password = urlsplit(pg_url).password
    assert password is None or password not in str(info.value)


async def test_wrong_password_is_database_open_error_without_the_password(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    wrong = pg_url.replace(f"{parts.username}:{parts.password}@", f"{parts.username}:WRONG1@")
    if parts.password is None:
        wrong = pg_url.replace(f"{parts.username}@", f"{parts.username}:WRONG1@")
    try:
        await admin(wrong, lambda conn: conn.fetchval("SELECT 1"))
    except asyncpg.InvalidPasswordError:
        pass
    else:
        pytest.skip("this server accepts any password on loopback (trust authentication)")
    with pytest.raises(DatabaseOpenError, match="password authentication failed") as info:
        await PostgresStore.from_url(wrong).open()
    assert "WRONG1" not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("pool_sise=3", 'unrecognized configuration parameter "pool_sise"'),  # a typo
        ("sslmode=bogus", "sslmode"),
        ("schema=pg_mine", "unacceptable schema name"),
    ],
)
async def test_bad_configuration_is_database_open_error(
    pg_url: str, query: str, fragment: str
) -> None:
    with pytest.raises(DatabaseOpenError, match=fragment) as info:
        await PostgresStore.from_url(f"{pg_url}?{query}").open()
    password = urlsplit(pg_url).password
    assert password is None or password not in str(info.value)


async def test_lost_connections_are_unavailable_then_the_pool_recovers(pg_fresh_url: str) -> None:
    name = f"lost_{uuid.uuid4().hex[:8]}"
    async with opened(f"{pg_fresh_url}&application_name={name}&pool_size=2") as store:
        await create(store, "r")
        killed = await admin(
            pg_fresh_url,
            lambda c: c.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                name,
            ),
        )
        assert killed >= 1
        outcomes: list[object] = []
        for seq in range(1, 4):  # the first use of each dead connection fails, translated
            try:
                await store.append(append("r", seq))
                outcomes.append(None)
            except DatabaseUnavailableError as exc:
                outcomes.append(exc)
                break
        with contextlib.suppress(DatabaseUnavailableError):
            await store.read_events("r")
        # Then fresh connections: the store works again without being reopened.
        last = (await store.read_events("r"))[-1].seq
        await store.append(append("r", last))
        assert (await store.read_events("r"))[-1].seq == last + 1
        assert all(o is None or isinstance(o, DatabaseUnavailableError) for o in outcomes)


# ---------------------------------------------------------------------------- pool and batching


async def test_a_thousand_concurrent_runs_stay_within_the_pool(pg_fresh_url: str) -> None:
    name = f"pool_{uuid.uuid4().hex[:8]}"
    peak = 0
    done = asyncio.Event()

    async def sample(conn: Any) -> None:
        nonlocal peak
        while not done.is_set():
            count = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
            )
            peak = max(peak, count)
            await asyncio.sleep(0.005)

    async def run(store: Store, i: int) -> None:
        run_id = f"r{i}"
        await store.create_run(new_run(run_id), event(run_id, 1))
        for seq in range(1, 4):
            await store.append(append(run_id, seq))
            assert (await store.get_run(run_id)) is not None
        assert len(await store.read_events(run_id)) == 4

    async with opened(f"{pg_fresh_url}&application_name={name}&pool_size=3") as store:
        sampler = asyncio.ensure_future(admin(pg_fresh_url, sample))
        await asyncio.gather(*(run(store, i) for i in range(1000)))
        done.set()
        await sampler
        commits, writes = store.commit_stats
    assert 1 <= peak <= 3
    assert writes == 4000
    assert commits < writes / 20  # group commit: the runs' writes share transactions


async def test_a_batch_of_appends_is_one_statement_per_round_in_one_commit(
    pg_fresh_url: str,
) -> None:
    async with opened(pg_fresh_url) as store:
        for i in range(200):
            await create(store, f"r{i}")
        before = store.commit_stats
        # One loop turn: 200 runs' appends, three of them to "r0" (three rounds), and a refused
        # one whose error must describe the log as it stood when it was refused.
        futures = [store.append(append(f"r{i}", 1)) for i in range(200)]
        futures += [store.append(append("r0", 2)), store.append(append("r0", 3))]
        stale = store.append(append("r1", 5))
        more = store.append(append("r1", 2))
        assert await asyncio.gather(*futures, more) == [None] * 203
        with pytest.raises(SequenceConflictError) as info:
            await stale
        after = store.commit_stats
    assert (info.value.expected, info.value.actual) == (5, 2)
    assert after[1] - before[1] == 204
    assert after[0] - before[0] <= 2  # one group commit (two if the loop split the turn)
    async with opened(pg_fresh_url) as store:
        assert [e.seq for e in await store.read_events("r0")] == [1, 2, 3, 4]
        assert [e.seq for e in await store.read_events("r1")] == [1, 2, 3]
        assert [e.seq for e in await store.read_events("r199")] == [1, 2]


# ---------------------------------------------------------------------------- many workers


async def test_workers_on_one_database_never_claim_a_run_twice(pg_fresh_url: str) -> None:
    async with opened(pg_fresh_url) as setup:
        for i in range(120):
            await create(setup, f"r{i:03}")
    claimed: dict[str, list[str]] = {}

    async def worker(store: PostgresStore, owner: str) -> None:
        while claims := await store.claim_runs(owner, limit=7, lease_ttl=60, now=T0):
            for c in claims:
                claimed.setdefault(c.run.run_id, []).append(owner)

    # Each its own pool and connections, as four processes would have; opened first, so
    # that they all claim at once.
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await asyncio.gather(*(worker(s, f"w{i}") for i, s in enumerate(stores)))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert sorted(claimed) == [f"r{i:03}" for i in range(120)]
    assert all(len(owners) == 1 for owners in claimed.values()), claimed
    assert len({o[0] for o in claimed.values()}) > 1  # the work was actually shared


async def test_concurrent_appends_from_many_stores_have_exactly_one_winner(
    pg_fresh_url: str,
) -> None:
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await create(stores[0], "r")
        for seq in range(1, 6):  # several rounds, each a race between five connections
            attempts = [
                s.append(Append("r", (event("r", seq + 1, f"W{i}"),), seq))
                for i, s in enumerate(stores)
            ]
            outcomes = await asyncio.gather(*attempts, return_exceptions=True)
            assert sum(o is None for o in outcomes) == 1, outcomes
            assert all(o is None or isinstance(o, SequenceConflictError) for o in outcomes)
        assert [e.seq for e in await stores[1].read_events("r")] == [1, 2, 3, 4, 5, 6]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_concurrent_reopens_from_many_stores_have_exactly_one_winner(
    pg_fresh_url: str,
) -> None:
    stores = [PostgresStore.from_url(pg_fresh_url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for n in range(5):  # several runs, each a race between five connections
            run_id = f"r{n}"
            await create(stores[0], run_id)
            failed = RunUpdate(status="failed", finished_at=T0 + 1)
            await stores[0].append(append(run_id, 1, update=failed))
            attempts = [
                s.reopen_run(run_id, event(run_id, 3, f"W{i}"), statuses=("failed",), now=T0 + 2)
                for i, s in enumerate(stores)
            ]
            outcomes = await asyncio.gather(*attempts, return_exceptions=True)
            assert sum(isinstance(o, RunRecord) for o in outcomes) == 1, outcomes
            assert all(isinstance(o, RunRecord | RunStatusError) for o in outcomes), outcomes
            assert [e.seq for e in await stores[1].read_events(run_id)] == [1, 2, 3]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# ---------------------------------------------------------------------------- LISTEN/NOTIFY


async def test_an_idle_worker_is_woken_when_a_run_becomes_claimable(pg_fresh_url: str) -> None:
    async with opened(pg_fresh_url) as worker, opened(pg_fresh_url) as client:
        assert await worker.wait_for_work(0.01)  # starts listening; work may predate it
        assert not await worker.wait_for_work(0.05)  # nothing happened: the timeout
        waiting = asyncio.ensure_future(worker.wait_for_work(10))
        await asyncio.sleep(0.05)
        await client.create_run(new_run("r"), event("r", 1))
        assert await asyncio.wait_for(waiting, 5)
        # A run created already leased by its creator is nobody else's work: no wake-up.
        await client.create_run(new_run("mine", owner="c", lease_expires_at=T0), event("mine", 1))
        assert not await worker.wait_for_work(0.2)


async def test_an_idle_worker_is_woken_when_a_run_is_reopened(pg_fresh_url: str) -> None:
    async with opened(pg_fresh_url) as worker, opened(pg_fresh_url) as client:
        for run_id, status in (("r", "failed"), ("ok", "succeeded")):
            await create(client, run_id)
            update = RunUpdate(status=status, finished_at=T0 + 1)
            await client.append(append(run_id, 1, update=update))
        assert await worker.wait_for_work(0.01)  # starts listening; work may predate it
        assert not await worker.wait_for_work(0.05)
        # A refused reopen makes nothing claimable: no wake-up.
        with pytest.raises(RunStatusError):
            await client.reopen_run("ok", event("ok", 3), statuses=("failed",), now=T0 + 2)
        assert not await worker.wait_for_work(0.2)
        waiting = asyncio.ensure_future(worker.wait_for_work(10))
        await asyncio.sleep(0.05)
        await client.reopen_run("r", event("r", 3), statuses=("failed",), now=T0 + 2)
        assert await asyncio.wait_for(waiting, 5)


async def test_a_pool_of_one_never_gives_its_connection_to_the_listener(
    pg_fresh_url: str,
) -> None:
    async with opened(f"{pg_fresh_url}&pool_size=1") as store:
        assert not await store.wait_for_work(0.05)  # only sleeps: listening would starve it
        await asyncio.wait_for(create(store, "r"), 5)
        assert await asyncio.wait_for(store.get_run("r"), 5) is not None


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
    with pytest.raises(asyncpg.UndefinedColumnError):
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
        with pytest.raises(DefinitionConflictError):
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


async def test_definitions_list_in_byte_order_whatever_the_collation(pg_fresh_url: str) -> None:
    # A database created with a linguistic collation would sort "alpha" before "Zeta";
    # list_definitions keeps the byte order of the other backends.
    collation = "und-x-icu"
    table = f'"{schema_of(pg_fresh_url)}".durable_definitions'

    async def relax(conn: Any) -> bool:
        if not await conn.fetchval(
            "SELECT count(*) FROM pg_collation WHERE collname = $1", collation
        ):
            return False
        for column, width in (("name", 255), ("version", 64)):
            await conn.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} "
                f'TYPE VARCHAR({width}) COLLATE "{collation}"'
            )
        return True

    async with opened(pg_fresh_url) as store:
        if not await admin(pg_fresh_url, relax):
            pytest.skip(f"this PostgreSQL has no {collation} collation")
        for name, version in [("alpha", "9"), ("Zeta", "1"), ("alpha", "10"), ("beta", "1")]:
            await store.put_definition(DefinitionRecord(name, version, "fp", "json", "{}", T0))
        # The table's own order is the linguistic one now...
        plain = await admin(
            pg_fresh_url, lambda c: c.fetch(f"SELECT name FROM {table} ORDER BY name")
        )
        assert [r[0] for r in plain] == ["alpha", "alpha", "beta", "Zeta"]
        # ...not the store's.
        listed = [(d.name, d.version) for d in await store.list_definitions()]
        assert listed == [("Zeta", "1"), ("alpha", "10"), ("alpha", "9"), ("beta", "1")]
        assert [d.version for d in await store.list_definitions("alpha")] == ["10", "9"]
