"""What only the PostgreSQL backend has: a bounded pool, several processes' stores on one
database, SKIP LOCKED claims, LISTEN/NOTIFY, versioned schema creation, the driver's errors.
(Everything the backends share is in test_conformance.py, run against PostgreSQL there too.)"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from cirules import unavailable
from pg_helpers import admin, opened, schema_of
from storekit import T0, append, conflict, create, event, new_run

from storage import (
    Append,
    DatabaseOpenError,
    DatabaseUnavailableError,
    DefinitionRecord,
    PostgresStore,
    RunRecord,
    RunStatusError,
    RunUpdate,
    SequenceConflictError,
    Store,
    open_store,
)

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
        # tests/pgserver.py's servers (the session's, .ci/run's) ask for the password on TCP.
        unavailable("this server accepts any password on loopback (trust authentication)")
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
    """A connection killed in the middle of a write fails that write with
    DatabaseUnavailableError (never a driver error, never the password) and writes nothing;
    the pool replaces it, and the store works again without being reopened. Connections
    killed while idle are replaced too, each failing at most its first use."""
    name = f"lost_{uuid.uuid4().hex[:8]}"
    url = f"{pg_fresh_url}&application_name={name}&pool_size=2"
    ours = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
    async with opened(url) as store:
        await create(store, "r")
        locker = await asyncpg.connect(pg_fresh_url.split("?", 1)[0])
        try:
            async with locker.transaction():
                # The write waits for the run's row lock, held here: the kill finds it in the
                # middle of its statement, every time (an idle kill may be noticed first).
                await locker.execute(
                    f'SELECT 1 FROM "{schema_of(pg_fresh_url)}".durable_runs '
                    "WHERE run_id = 'r' FOR UPDATE"
                )
                write = asyncio.ensure_future(store.append(append("r", 1)))
                waiting = f"{ours} AND wait_event_type = 'Lock'"
                for _ in range(500):
                    if await locker.fetch(waiting, name):
                        break
                    await asyncio.sleep(0.01)
                killed = await locker.fetchval(
                    f"SELECT count(pg_terminate_backend(pid)) FROM ({waiting}) AS w", name
                )
                assert killed == 1
                lost = r"^PostgreSQL write on postgresql://\S+ failed: .*administrator command"
                with pytest.raises(DatabaseUnavailableError, match=lost) as info:
                    await asyncio.wait_for(write, 10)
        finally:
            await locker.close()
        password = urlsplit(pg_fresh_url).password
        assert password is None or password not in str(info.value)
        assert [e.seq for e in await store.read_events("r")] == [1]  # the write wrote nothing
        await asyncio.wait_for(store.append(append("r", 1)), 10)  # a fresh connection
        assert [e.seq for e in await store.read_events("r")] == [1, 2]

        idle = await admin(
            pg_fresh_url,
            lambda c: c.fetchval(
                f"SELECT count(pg_terminate_backend(pid)) FROM ({ours}) AS o", name
            ),
        )
        assert idle >= 1
        failures: list[DatabaseUnavailableError] = []

        async def retried(op: Callable[[], Awaitable[Any]]) -> Any:
            for _ in range(idle + 1):
                try:
                    return await asyncio.wait_for(op(), 10)
                except DatabaseUnavailableError as exc:  # a dead connection's first use
                    failures.append(exc)
            raise AssertionError(f"still failing after {idle + 1} tries: {failures}")

        await retried(lambda: store.append(append("r", 2)))
        assert [e.seq for e in await retried(lambda: store.read_events("r"))] == [1, 2, 3]
        assert len(failures) <= idle, failures


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
        with pytest.raises(SequenceConflictError, match=conflict("r1", 5, 2)) as info:
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
        with pytest.raises(RunStatusError, match=r"^run 'ok' is succeeded, not failed: "):
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


async def test_definitions_list_in_byte_order_whatever_the_collation(pg_fresh_url: str) -> None:
    # A database created with a linguistic collation would sort "alpha" before "Zeta";
    # list_definitions keeps the byte order of the other backends. The collation is made here,
    # in the test's schema, from ICU's root locale: every PostgreSQL built with ICU (Debian's
    # is) can, whatever locales the machine has and whatever initdb imported.
    schema = schema_of(pg_fresh_url)
    collation = f'"{schema}".linguistic'
    table = f'"{schema}".durable_definitions'

    async def relax(conn: Any) -> str | None:
        try:
            await conn.execute(f"CREATE COLLATION {collation} (provider = icu, locale = 'und')")
        except asyncpg.FeatureNotSupportedError as exc:  # built without ICU
            return str(exc)
        for column, width in (("name", 255), ("version", 64)):
            await conn.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} "
                f"TYPE VARCHAR({width}) COLLATE {collation}"
            )
        return None

    async with opened(pg_fresh_url) as store:
        problem = await admin(pg_fresh_url, relax)
        if problem is not None:
            unavailable(f"this PostgreSQL cannot make an ICU collation: {problem}")
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
