"""A worker releasing (parking, or putting off on a timer) a run while an item is being delivered
to that run, on PostgreSQL: whichever of the two transactions commits first, the run must end up
ready no later than the item's arrival, never parked with the item in its inbox.

Each race holds the first write's transaction open on one connection, starts the second write on
another one (it either completes or waits for the first one's row lock), then commits the first
one: both interleavings of the two commits are tried, for a signal (Store.send), for a child's
end (an append that sends to its parent) and for an append that consumes inbox items followed by
the release, as the writer applies them in one batch. The same sequences on SQLite (whose writer
is serialized) keep the wake-up as well."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import (
    Append,
    EventRecord,
    Fence,
    NewInboxItem,
    NewRun,
    Release,
    RunRecord,
    RunUpdate,
    SQLiteStore,
    Store,
    open_store,
)
from storage import _postgres_ops as ops

Op = Callable[[Any], Awaitable[None]]  # a write on an asyncpg connection, inside a transaction


async def test_postgres_release_racing_a_signal_keeps_the_wake_up(pg_fresh_url: str) -> None:
    base, _, schema = pg_fresh_url.partition("?schema=")
    store = open_store(pg_fresh_url)
    await store.open()
    conns = [await asyncpg.connect(base) for _ in range(2)]
    try:
        now = time.time()
        run = NewRun("r", "wf", "1", b"\xc0", now, owner="w1", lease_expires_at=now + 60)
        record, _ = await store.create_run(run, EventRecord("r", 1, "RunStarted", b"\x80", now))
        for conn in conns:
            await conn.execute(f"SET search_path TO {schema}")
        delivering = conns[0].transaction()
        await delivering.start()
        item = NewInboxItem("r", "signal", "go", b"\xc0", time.time())
        await ops.deliver(conns[0], item, strict=True)  # inserted and woken, not committed
        release = Release("r", Fence("w1", record.epoch), park=True)
        releasing = asyncio.ensure_future(ops.release(conns[1], [release]))
        await asyncio.sleep(0.3)  # done, or waiting for the delivery's row lock
        await delivering.commit()
        await releasing
        row = await store.get_run("r")
    finally:
        for conn in conns:
            await conn.close()
        await store.close()
    assert row is not None and row.ready_at is not None, "parked with a signal in its inbox"


# ------------------------------------------------------------------------------ the races

T = 1_000_000.0  # the runs' creation; items arrive at ITEM_AT (stores never read the clock)
ITEM_AT = T + 10.0
LATER = T + 3_600.0  # a timer-parked release's ready_at


class Race:
    """Two connections to one fresh schema, a store on it, and runs leased to worker w1."""

    def __init__(self, store: Store, conns: list[Any]) -> None:
        self.store = store
        self.conns = conns
        self.fences: dict[str, Fence] = {}
        self.last_seq: dict[str, int] = {}

    async def run(self, run_id: str, parent: str | None = None) -> None:
        new = NewRun(run_id, "wf", "1", b"\xc0", T, parent, owner="w1", lease_expires_at=T + 60)
        record, _ = await self.store.create_run(new, EventRecord(run_id, 1, "S", b"\x80", T))
        self.fences[run_id] = Fence("w1", record.epoch)
        self.last_seq[run_id] = record.last_seq

    async def race(self, first: Op, second: Op) -> None:
        """first's transaction is open (its writes made) while second runs; then first commits,
        then second does."""
        tx = self.conns[0].transaction()
        await tx.start()
        try:
            await first(self.conns[0])
            pending = asyncio.ensure_future(_in_transaction(self.conns[1], second))
            await _blocked_or_done(self.conns[0], self.conns[1].get_server_pid(), pending)
        except BaseException:
            await tx.rollback()
            raise
        await tx.commit()
        await pending

    async def row(self, run_id: str) -> RunRecord:
        row = await self.store.get_run(run_id)
        assert row is not None
        return row

    # The writes, as the store's writer applies them on its batch's connection.

    def signal(self, run_id: str = "r", *, name: str = "go", at: float = ITEM_AT) -> Op:
        item = NewInboxItem(run_id, "signal", name, b"\xc0", at)

        async def op(conn: Any) -> None:
            await ops.deliver(conn, item, strict=True)

        return op

    def child_end(self, child: str = "c", parent: str = "p") -> Op:
        """The child's last append, which sends its end to its parent."""
        seq = self.last_seq[child] + 1
        end = Append(
            child,
            (EventRecord(child, seq, "RunSucceeded", b"\x80", ITEM_AT),),
            seq - 1,
            self.fences[child],
            RunUpdate(status="succeeded", finished_at=ITEM_AT),
            send=(NewInboxItem(parent, "child", child, b"\xc0", ITEM_AT),),
        )

        async def op(conn: Any) -> None:
            assert await ops.append_many(conn, [end]) == [None]

        return op

    def release(self, run_id: str = "r", *, timer: bool = False, consume: int | None = None) -> Op:
        """Park the run (or put it off until LATER), after an append consuming `consume`."""
        fence = self.fences[run_id]
        if timer:
            release = Release(run_id, fence, ready_at=LATER)
        else:
            release = Release(run_id, fence, park=True)
        seq = self.last_seq[run_id] + 1
        handled = Append(
            run_id,
            (EventRecord(run_id, seq, "SignalReceived", b"\x80", T + 1),),
            seq - 1,
            fence,
            consume=() if consume is None else (consume,),
        )

        async def op(conn: Any) -> None:
            if consume is not None:
                assert await ops.append_many(conn, [handled]) == [None]
            await ops.release(conn, [release])

        return op


async def _in_transaction(conn: Any, op: Op) -> None:
    async with conn.transaction():
        await op(conn)


async def _blocked_or_done(observer: Any, pid: int, pending: asyncio.Future[None]) -> None:
    """Until the write is done or waits for a lock (up to 2 s: a write that never blocks may be
    slow to finish, but one that blocks forever must be let through by the commit)."""
    deadline = time.monotonic() + 2.0
    while not pending.done() and time.monotonic() < deadline:
        waiting = await observer.fetchval(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting == "Lock":
            return
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def racing(url: str) -> AsyncIterator[Race]:
    base, _, schema = url.partition("?schema=")
    store = open_store(url)
    await store.open()
    conns = [await asyncpg.connect(base) for _ in range(2)]
    try:
        for conn in conns:
            await conn.execute(f"SET search_path TO {schema}")
        yield Race(store, conns)
    finally:
        for conn in conns:
            await conn.close()
        await store.close()


@pytest.mark.parametrize("timer", [False, True], ids=["parked", "timer"])
@pytest.mark.parametrize("delivery_first", [True, False], ids=["delivery-first", "release-first"])
async def test_a_release_racing_a_signal_leaves_the_run_ready(
    pg_fresh_url: str, timer: bool, delivery_first: bool
) -> None:
    async with racing(pg_fresh_url) as race:
        await race.run("r")
        signal, release = race.signal(), race.release(timer=timer)
        await (race.race(signal, release) if delivery_first else race.race(release, signal))
        row = await race.row("r")
        items = await race.store.read_inbox("r")
    assert [i.name for i in items] == ["go"]
    assert row.owner is None
    assert row.ready_at == ITEM_AT, "the signal in the inbox must make the run ready"


@pytest.mark.parametrize("timer", [False, True], ids=["parked", "timer"])
@pytest.mark.parametrize("delivery_first", [True, False], ids=["delivery-first", "release-first"])
async def test_a_parent_released_while_a_child_ends_is_woken(
    pg_fresh_url: str, timer: bool, delivery_first: bool
) -> None:
    async with racing(pg_fresh_url) as race:
        await race.run("p")
        await race.run("c", parent="p")
        end, release = race.child_end(), race.release("p", timer=timer)
        await (race.race(end, release) if delivery_first else race.race(release, end))
        row = await race.row("p")
        items = await race.store.read_inbox("p")
    assert [i.name for i in items] == ["c"]
    assert row.ready_at == ITEM_AT, "the child's end in the inbox must make the parent ready"


@pytest.mark.parametrize("delivery_first", [True, False], ids=["delivery-first", "release-first"])
async def test_consuming_the_inbox_then_parking_keeps_an_item_delivered_meanwhile(
    pg_fresh_url: str, delivery_first: bool
) -> None:
    """The worker consumes the item it handled and parks, in one batch, while a second one
    arrives: the second one stays and wakes the run."""
    async with racing(pg_fresh_url) as race:
        await race.run("r")
        first = await race.store.send(NewInboxItem("r", "signal", "one", b"\xc0", T + 0.5))
        signal, release = race.signal(), race.release(consume=first.id)
        await (race.race(signal, release) if delivery_first else race.race(release, signal))
        row = await race.row("r")
        items = await race.store.read_inbox("r")
    assert [i.name for i in items] == ["go"]
    assert row.ready_at == ITEM_AT


@pytest.mark.parametrize("timer", [False, True], ids=["parked", "timer"])
async def test_postgres_release_with_an_item_already_in_the_inbox_is_ready_at_once(
    pg_fresh_url: str, timer: bool
) -> None:
    async with racing(pg_fresh_url) as race:
        await race.run("r")
        await race.signal()(race.conns[0])  # committed (no transaction)
        await _in_transaction(race.conns[1], race.release(timer=timer))
        row = await race.row("r")
    assert row.ready_at == ITEM_AT


async def test_two_deliveries_racing_to_wake_a_parked_run_keep_the_earlier_arrival(
    pg_fresh_url: str,
) -> None:
    """The later item's wake-up, waiting for the earlier one's, must not move ready_at later."""
    async with racing(pg_fresh_url) as race:
        await race.run("r")
        await _in_transaction(race.conns[1], race.release())  # parked, committed
        await race.race(race.signal(name="early"), race.signal(name="late", at=ITEM_AT + 5))
        row = await race.row("r")
    assert row.ready_at == ITEM_AT


# ------------------------------------------------------------- the same sequences on SQLite


async def _sqlite_run(store: Store, run_id: str, parent: str | None = None) -> Fence:
    new = NewRun(run_id, "wf", "1", b"\xc0", T, parent, owner="w1", lease_expires_at=T + 60)
    record, _ = await store.create_run(new, EventRecord(run_id, 1, "S", b"\x80", T))
    return Fence("w1", record.epoch)


@pytest.mark.parametrize("timer", [False, True], ids=["parked", "timer"])
@pytest.mark.parametrize("delivery_first", [True, False], ids=["delivery-first", "release-first"])
async def test_sqlite_keeps_the_wake_up_in_either_order(
    tmp_path: Path, timer: bool, delivery_first: bool
) -> None:
    store = SQLiteStore(str(tmp_path / "race.db"))
    await store.open()
    try:
        fence = await _sqlite_run(store, "r")
        item = NewInboxItem("r", "signal", "go", b"\xc0", ITEM_AT)
        release = Release("r", fence, ready_at=LATER) if timer else Release("r", fence, park=True)
        if delivery_first:
            await store.send(item)
            await store.release_leases([release])
        else:
            await store.release_leases([release])
            await store.send(item)
        row = await store.get_run("r")
    finally:
        await store.close()
    assert row is not None and row.ready_at == ITEM_AT
