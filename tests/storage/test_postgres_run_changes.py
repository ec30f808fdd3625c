"""PostgreSQL's changes channel: commits that matter to a run's waiters (an inbox item sent to
it, its end) announce its run id to every listening store, in any process; the hot path (a
step's append) announces nothing; a pool of one cannot listen."""

from __future__ import annotations

import asyncio
import time

from storekit import event, new_run

from storage import (
    Append,
    Fence,
    NewInboxItem,
    PostgresStore,
    RunChanges,
    RunUpdate,
    open_store,
)


async def _opened(url: str) -> PostgresStore:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    await store.open()
    return store


async def _heard(seen: list[str], want: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while want not in seen:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_sends_and_ends_are_announced_to_other_stores(pg_fresh_url: str) -> None:
    writer = await _opened(pg_fresh_url)
    listener = await _opened(pg_fresh_url)  # another pool: as another process would
    try:
        assert isinstance(listener, RunChanges)
        seen: list[str] = []
        listener.on_run_change(seen.append)
        assert seen == []
        assert await listener.listen_runs() is True
        assert await listener.listen_runs() is True  # idempotent
        now = time.time()
        run, _ = await writer.create_run(
            new_run("r1", owner="w", lease_expires_at=now + 60), event("r1", 1)
        )
        fence = Fence("w", run.epoch)
        # A step's append: the hot path announces nothing.
        await writer.append(Append("r1", (event("r1", 2),), 1, fence=fence))
        # A signal: announced at commit.
        await writer.send(NewInboxItem("r1", "signal", "go", b"", now))
        assert await _heard(seen, "r1", 5), seen
        assert seen == ["r1"]
        seen.clear()
        # Its end.
        end = Append("r1", (event("r1", 3),), 2, fence=fence, update=RunUpdate(status="succeeded"))
        await writer.append(end)
        assert await _heard(seen, "r1", 5)
        # An append that sends to another run announces that run.
        await writer.create_run(new_run("r2"), event("r2", 1))
        seen.clear()
        run3, _ = await writer.create_run(
            new_run("r3", owner="w", lease_expires_at=now + 60), event("r3", 1)
        )
        item = NewInboxItem("r2", "child", "r3", b"", now)
        await writer.append(
            Append("r3", (event("r3", 2),), 1, fence=Fence("w", run3.epoch), send=(item,))
        )
        assert await _heard(seen, "r2", 5)
        await asyncio.sleep(0.2)
        assert "r3" not in seen
    finally:
        await listener.close()
        await writer.close()


async def test_a_pool_of_one_does_not_listen(pg_fresh_url: str) -> None:
    store = await _opened(pg_fresh_url + ("&" if "?" in pg_fresh_url else "?") + "pool_size=1")
    try:
        assert await store.listen_runs() is False
        assert store._listener is None
    finally:
        await store.close()
