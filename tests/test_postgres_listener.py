"""The LISTEN connection dying (a server restart, an admin's pg_terminate_backend) must not
leak driver errors, spin idle workers, or break close()."""

from __future__ import annotations

import asyncio
import time

import asyncpg  # type: ignore[import-untyped, unused-ignore]

from storage import PostgresStore, open_store


async def test_a_dead_listener_is_replaced_quietly(pg_fresh_url: str) -> None:
    store = open_store(pg_fresh_url)
    assert isinstance(store, PostgresStore)
    await store.open()
    try:
        assert await store.wait_for_work(0.1) is True  # first call starts listening
        listener = store._listener
        assert listener is not None
        pid = listener.get_server_pid()
        admin = await asyncpg.connect(pg_fresh_url.split("?")[0])
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the client notices the connection is gone
        started = time.monotonic()
        woken = [await store.wait_for_work(0.3) for _ in range(3)]
        elapsed = time.monotonic() - started
        # One wake-up for the re-listen, then real waits: no driver error, no spinning.
        assert woken == [True, False, False]
        assert elapsed >= 0.55
        assert store._listener is not None and store._listener.get_server_pid() != pid
    finally:
        await store.close()  # must not raise, and must close the pool
    assert store._pool is None
