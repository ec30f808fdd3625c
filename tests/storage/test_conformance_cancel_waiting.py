"""Conformance of Store.cancel_waiting on every backend: a queued run that still waits (never
admitted, never claimed, only its first event) is ended by one append, atomically with the
check: events, cancelled status, the cancel item consumed, its parent told, no queue slot
taken; a run admitted, claimed, plain, ended or missing is left alone (False, nothing
written); and, on the two SQL backends, stores cancelling while others admit: every run ends
exactly one way, never both cancelled here and executed there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from pgserver import PgSession
from storekit import T0, event, new_run

from storage import (
    Append,
    EventRecord,
    Fence,
    NewInboxItem,
    QueueRecord,
    Release,
    RunRecord,
    RunUpdate,
    Store,
    open_store,
)

Q = "emails"


def queued(run_id: str, *, at: float = T0, **extra: object) -> object:
    return msgspec.structs.replace(new_run(run_id, created_at=at), queue=Q, **extra)


async def start(store: Store, run_id: str, **extra: object) -> RunRecord:
    run = queued(run_id, **extra)  # type: ignore[arg-type]
    record, created = await store.create_run(run, event(run_id, 1, "Started"))  # type: ignore[arg-type]
    assert created, record
    return record


async def ask_cancel(store: Store, run_id: str, at: float = T0 + 2) -> int:
    item = NewInboxItem(run_id, "cancel", "cancel", b"stop", at, dedupe_key="cancel")
    return (await store.send(item)).id


def ending(run_id: str, item_id: int, *, parent: str | None = None, at: float = T0 + 3) -> Append:
    """What the engine writes for a waiting run cancelled (opaque events here)."""
    send: tuple[NewInboxItem, ...] = ()
    if parent is not None:
        send = (NewInboxItem(parent, "child", run_id, b"cancelled", at, f"child:{run_id}"),)
    return Append(
        run_id,
        (EventRecord(run_id, 2, "Asked", b"a", at), EventRecord(run_id, 3, "Ended", b"e", at)),
        1,
        None,
        RunUpdate(status="cancelled", finished_at=at),
        consume=(item_id,),
        send=send,
    )


async def claim(store: Store, owner: str, *, now: float = T0 + 10) -> list[str]:
    claims = await store.claim_runs(owner, limit=50, lease_ttl=30.0, now=now)
    return sorted(c.run.run_id for c in claims)


async def test_a_waiting_run_ends_cancelled_at_once_without_a_slot(store: Store) -> None:
    await store.put_queue(QueueRecord(Q, concurrency=1))
    busy = new_run("p", owner="pw", lease_expires_at=T0 + 1000)  # not for claims
    parent, _ = await store.create_run(busy, event("p", 1, "Started"))
    await start(store, "holder")
    assert await claim(store, "w1") == ["holder"]  # the one slot is taken
    await start(store, "r1", parent_run_id="p", at=T0 + 1)
    await start(store, "r2", at=T0 + 1)
    item_id = await ask_cancel(store, "r1")
    assert await store.cancel_waiting(ending("r1", item_id, parent=parent.run_id)) is True
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.finished_at, run.last_seq, run.ready_at) == (
        "cancelled",
        T0 + 3,
        3,
        None,
    )
    assert [(e.seq, e.type) for e in await store.read_events("r1")] == [
        (1, "Started"),
        (2, "Asked"),
        (3, "Ended"),
    ]
    assert await store.read_inbox(["r1"]) == []  # the request was consumed
    (told,) = await store.read_inbox(["p"])
    assert (told.kind, told.name, told.payload) == ("child", "r1", b"cancelled")
    stats = await store.queue_stats(Q, now=T0 + 10)
    assert (stats.waiting, stats.running) == (1, 1)  # r2 waits, the holder runs
    place = await store.run_queue("r1")
    assert place is not None and place.admitted_at is None  # it never took a slot
    # The slot holder is untouched; when it ends, the next waiting run is r2, not r1.
    holder = await store.get_run("holder")
    assert holder is not None and holder.status == "pending" and holder.owner == "w1"
    await store.append(
        Append(
            "holder",
            (event("holder", 2, "Done"),),
            1,
            Fence("w1", holder.epoch),
            RunUpdate(status="succeeded", finished_at=T0 + 4),
        )
    )
    assert await claim(store, "w1", now=T0 + 11) == ["r2"]


async def test_a_delayed_run_is_ended_before_its_delay(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    await start(store, "r1", ready_at=T0 + 3600)
    item_id = await ask_cancel(store, "r1")
    assert await store.cancel_waiting(ending("r1", item_id)) is True
    assert await claim(store, "w1", now=T0 + 7200) == []
    run = await store.get_run("r1")
    assert run is not None and run.status == "cancelled"


async def test_an_admitted_run_is_left_to_its_executor(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    await start(store, "r1")
    assert await claim(store, "w1") == ["r1"]
    item_id = await ask_cancel(store, "r1")
    assert await store.cancel_waiting(ending("r1", item_id)) is False
    run = await store.get_run("r1")
    assert run is not None and (run.status, run.last_seq, run.owner) == ("pending", 1, "w1")
    assert [i.id for i in await store.read_inbox(["r1"])] == [item_id]  # still to deliver
    assert len(await store.read_events("r1")) == 1


async def test_an_admitted_run_whose_lease_went_back_is_left_too(store: Store) -> None:
    """Admitted once, claimed once: no longer unread, even without an owner now."""
    await store.put_queue(QueueRecord(Q))
    await start(store, "r1")
    (c,) = await store.claim_runs("w1", limit=1, lease_ttl=30.0, now=T0 + 10)
    await store.release_leases([Release("r1", c.fence, park=True)])
    item_id = await ask_cancel(store, "r1")
    assert await store.cancel_waiting(ending("r1", item_id)) is False


async def test_plain_ended_and_missing_runs_are_left_alone(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    await store.create_run(new_run("plain"), event("plain", 1, "Started"))
    item_id = await ask_cancel(store, "plain")
    assert await store.cancel_waiting(ending("plain", item_id)) is False
    plain = await store.get_run("plain")
    assert plain is not None and plain.status == "pending" and plain.last_seq == 1
    await start(store, "r1")
    item_id = await ask_cancel(store, "r1")
    assert await store.cancel_waiting(ending("r1", item_id)) is True
    assert await store.cancel_waiting(ending("r1", item_id)) is False  # ended: once
    assert len(await store.read_events("r1")) == 3
    assert await store.cancel_waiting(ending("nobody", 1)) is False


async def test_a_cancelled_waiting_run_can_be_reopened_into_its_queue(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    await start(store, "r1")
    item_id = await ask_cancel(store, "r1")
    assert await store.cancel_waiting(ending("r1", item_id)) is True
    reopened = await store.reopen_run(
        "r1", event("r1", 4, "Resumed"), statuses=("cancelled",), now=T0 + 5
    )
    assert reopened.status == "pending"
    place = await store.run_queue("r1")
    assert place is not None and place.admitted_at is None
    assert await claim(store, "w1") == ["r1"]  # admitted like any waiting run


@pytest.mark.parametrize(
    "bad",
    [
        Append("r1", (event("r1", 2),), 1, Fence("w", 1), RunUpdate(status="cancelled")),
        Append("r1", (event("r1", 2),), 1, None, RunUpdate(status="running")),
        Append("r1", (event("r1", 3),), 2, None, RunUpdate(status="cancelled")),
        Append("r1", (), 1, None, RunUpdate(status="cancelled")),
    ],
)
async def test_bad_appends_are_refused(store: Store, bad: Append) -> None:
    await store.put_queue(QueueRecord(Q))
    await start(store, "r1")
    with pytest.raises(ValueError, match="cancel_waiting"):
        await store.cancel_waiting(bad)
    run = await store.get_run("r1")
    assert run is not None and run.status == "pending" and run.last_seq == 1


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database URL several stores open (as other processes would)."""
    if request.param == "postgres":
        schemas: PgSession = request.getfixturevalue("pg_schema_factory")
        return schemas.fresh_url()
    return f"sqlite:///{tmp_path / 'shared.db'}"


async def test_cancelling_while_others_admit_ends_each_run_one_way(shared_url: str) -> None:
    """Two stores cancel every run while two others admit them as fast as they can: each run
    is either claimed (and its cancel left in its inbox for the executor) or cancelled here
    (and never claimed), never both, never neither."""
    stores = [open_store(shared_url) for _ in range(4)]
    for s in stores:
        await s.open()
    ids = [f"r{i:03d}" for i in range(120)]
    claimed: dict[str, str] = {}
    cancelled: set[str] = set()
    stop = asyncio.Event()

    async def worker(n: int, s: Store) -> None:
        while not stop.is_set():
            for c in await s.claim_runs(f"w{n}", limit=3, lease_ttl=60.0, now=T0 + 10):
                assert c.run.run_id not in claimed
                claimed[c.run.run_id] = f"w{n}"
            await asyncio.sleep(0)

    async def canceller(s: Store, mine: list[str]) -> None:
        for run_id in mine:
            item_id = await ask_cancel(s, run_id)
            if await s.cancel_waiting(ending(run_id, item_id)):
                cancelled.add(run_id)

    try:
        await stores[0].put_queue(QueueRecord(Q))
        for run_id in ids:
            await start(stores[0], run_id)
        workers = [asyncio.create_task(worker(n, s)) for n, s in enumerate(stores[2:])]
        await asyncio.gather(canceller(stores[0], ids[::2]), canceller(stores[1], ids[1::2]))
        await asyncio.sleep(0.3)  # the workers take what is left (nothing should be)
        stop.set()
        await asyncio.gather(*workers)
        assert cancelled & set(claimed) == set()
        assert cancelled | set(claimed) == set(ids)
        assert cancelled and claimed  # the race did go both ways
        for run_id in ids:
            run = await stores[0].get_run(run_id)
            inbox = await stores[0].read_inbox([run_id])
            assert run is not None
            if run_id in cancelled:
                assert (run.status, run.last_seq, run.owner, inbox) == ("cancelled", 3, None, [])
            else:
                assert (run.status, run.last_seq, run.owner) == ("pending", 1, claimed[run_id])
                assert [i.kind for i in inbox] == ["cancel"]
    finally:
        for s in stores:
            await s.close()
