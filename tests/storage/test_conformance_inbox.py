"""Conformance of run inboxes, parking, pruning and the worker registry: written once, run against
every backend in conftest (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import StoreFactory
from storekit import CLOSED, T0, append, conflict, create, event, lease_lost, must_get

from storage import (
    Append,
    Fence,
    InboxItem,
    LeaseLostError,
    NewInboxItem,
    NewRun,
    Release,
    RunNotFoundError,
    RunQuery,
    RunRecord,
    RunUpdate,
    SequenceConflictError,
    Store,
    StoreClosedError,
    WorkerRecord,
)


def item(
    run_id: str,
    name: str = "go",
    *,
    at: float = T0,
    key: str | None = None,
    kind: str = "signal",
    payload: bytes | None = None,
) -> NewInboxItem:
    return NewInboxItem(
        run_id=run_id,
        kind=kind,
        name=name,
        payload=f"{run_id}:{name}".encode() if payload is None else payload,
        created_at=at,
        dedupe_key=key,
    )


def stored(new: NewInboxItem, id: int) -> InboxItem:
    """The InboxItem a store should return for `new` under `id`."""
    return InboxItem(
        id, new.run_id, new.kind, new.name, new.payload, new.created_at, new.dedupe_key
    )


async def parked(store: Store, run_id: str, *, now: float = T0) -> Fence:
    """Create a run, claim it and release it parked; the fence it was held with."""
    await create(store, run_id, created_at=now)
    claims = await store.claim_runs("w0", limit=1, lease_ttl=10, now=now, exclude=())
    (claim,) = [c for c in claims if c.run.run_id == run_id]
    await store.release_leases([Release(run_id, claim.fence, park=True)])
    assert (await must_get(store, run_id)).ready_at is None
    return claim.fence


async def claimable(store: Store, now: float) -> list[str]:
    """The runs a worker would claim at `now` (claiming them, with a short lease)."""
    claims = await store.claim_runs("probe", limit=100, lease_ttl=0.5, now=now)
    return sorted(c.run.run_id for c in claims)


async def finish(store: Store, run: RunRecord, *, at: float, status: str = "succeeded") -> None:
    update = RunUpdate(status=status, finished_at=at)
    await store.append(append(run.run_id, run.last_seq, update=update))


# ---------------------------------------------------------------------------- send / read


async def test_send_then_read_inbox_in_arrival_order(store: Store) -> None:
    await create(store, "a")
    await create(store, "b")
    await create(store, "c")
    sent = [
        await store.send(item("a", "one", at=T0 + 1)),
        await store.send(item("b", "two", at=T0 + 2, kind="cancel", payload=b"")),
        await store.send(item("a", "three", at=T0 + 3, kind="child", payload=b"\x00\xff")),
        await store.send(item("c", "four", at=T0 + 4)),
    ]
    ids = [s.id for s in sent]
    assert ids == sorted(ids) and len(set(ids)) == 4  # strictly increasing
    assert sent[1] == stored(item("b", "two", at=T0 + 2, kind="cancel", payload=b""), ids[1])
    assert await store.read_inbox(["a", "b"]) == sent[:3]
    assert await store.read_inbox(["b", "a", "missing"]) == sent[:3]  # ordered by id, not ask
    assert await store.read_inbox(["a"]) == [sent[0], sent[2]]
    assert await store.read_inbox(["missing"]) == []
    assert await store.read_inbox([]) == []


async def test_dedupe_key_returns_the_existing_item_and_stores_one(store: Store) -> None:
    await create(store, "r")
    await create(store, "other")
    first = await store.send(item("r", "pay", key="order-1", payload=b"first"))
    again = await store.send(item("r", "pay", at=T0 + 5, key="order-1", payload=b"second"))
    assert again == first
    # The key is per run, and items without a key never collide.
    elsewhere = await store.send(item("other", "pay", key="order-1"))
    plain = [await store.send(item("r", "x")) for _ in range(2)]
    assert await store.read_inbox(["r", "other"]) == [first, elsewhere, *plain]
    assert (await store.read_inbox(["r"]))[0].payload == b"first"


async def test_concurrent_sends_with_one_dedupe_key_store_one(store: Store) -> None:
    await create(store, "r")
    results = await asyncio.gather(
        *(store.send(item("r", "s", key="k", payload=bytes([i]))) for i in range(5))
    )
    assert len({r.id for r in results}) == 1
    assert await store.read_inbox(["r"]) == [results[0]]


async def test_send_to_an_unknown_run_raises_and_stores_nothing(store: Store) -> None:
    await create(store, "r")
    with pytest.raises(RunNotFoundError, match=r"^no run with id 'nope'$") as info:
        await store.send(item("nope"))
    assert info.value.run_id == "nope"
    assert await store.read_inbox(["nope", "r"]) == []
    assert await store.get_run("nope") is None


async def test_send_wakes_a_parked_run(store: Store) -> None:
    await parked(store, "r")
    assert await claimable(store, T0 + 10_000) == []  # parked: never on its own
    await store.send(item("r", at=T0 + 5))
    assert (await must_get(store, "r")).ready_at == T0 + 5
    assert await claimable(store, T0 + 4) == []
    assert await claimable(store, T0 + 5) == ["r"]


async def test_send_moves_a_future_ready_at_to_now_and_never_later(store: Store) -> None:
    await create(store, "r")
    (claim,) = await store.claim_runs("w1", limit=1, lease_ttl=10, now=T0)
    await store.release_leases([Release("r", claim.fence, ready_at=T0 + 100)])  # a timer
    await store.send(item("r", at=T0 + 10))
    assert (await must_get(store, "r")).ready_at == T0 + 10
    await store.send(item("r", at=T0 + 50))  # later than ready_at: left alone
    assert (await must_get(store, "r")).ready_at == T0 + 10
    assert await claimable(store, T0 + 10) == ["r"]


async def test_send_to_a_finished_run_stores_the_item_without_waking_it(store: Store) -> None:
    run = await create(store, "r")
    await finish(store, run, at=T0 + 1)
    sent = await store.send(item("r", at=T0 + 2))
    assert await store.read_inbox(["r"]) == [sent]
    row = await must_get(store, "r")
    assert (row.status, row.ready_at) == ("succeeded", None)
    assert await claimable(store, T0 + 1_000) == []


async def test_an_item_sent_during_a_lease_survives_a_parking_release(store: Store) -> None:
    """The worker decided to park before the signal came: the release must not lose it."""
    await create(store, "r")
    (claim,) = await store.claim_runs("w1", limit=1, lease_ttl=30, now=T0)
    sent = await store.send(item("r", at=T0 + 3))
    assert await claimable(store, T0 + 4) == []  # still leased by w1
    await store.release_leases([Release("r", claim.fence, park=True)])
    assert (await must_get(store, "r")).ready_at == T0 + 3
    # Nor may a timer put it off: ready at the item, not at the timer.
    (claim,) = await store.claim_runs("w1", limit=1, lease_ttl=30, now=T0 + 4)
    await store.release_leases([Release("r", claim.fence, ready_at=T0 + 500)])
    assert (await must_get(store, "r")).ready_at == T0 + 3
    # Once consumed, the run parks for real.
    (claim,) = await store.claim_runs("w1", limit=1, lease_ttl=30, now=T0 + 5)
    await store.append(Append("r", (event("r", 2),), 1, claim.fence, consume=(sent.id,)))
    await store.release_leases([Release("r", claim.fence, park=True)])
    assert (await must_get(store, "r")).ready_at is None


# ---------------------------------------------------------------------------- parking


async def test_a_parked_run_is_never_claimed(store: Store) -> None:
    await create(store, "r")
    await create(store, "other", created_at=T0 + 1)
    claims = await store.claim_runs("w1", limit=2, lease_ttl=10, now=T0 + 1)
    for c in claims:
        await store.release_leases([Release(c.run.run_id, c.fence, park=c.run.run_id == "r")])
    row = await must_get(store, "r")
    assert (row.owner, row.lease_expires_at, row.ready_at) == (None, None, None)
    assert await claimable(store, T0 + 1) == ["other"]
    assert await claimable(store, T0 + 1_000_000) == ["other"]  # its lease lapsed; r never


async def test_park_needs_the_matching_fence(store: Store) -> None:
    await create(store, "r")
    (claim,) = await store.claim_runs("w1", limit=1, lease_ttl=10, now=T0)
    await store.release_leases([Release("r", Fence("w1", claim.fence.epoch + 1), park=True)])
    row = await must_get(store, "r")
    assert (row.owner, row.ready_at) == ("w1", T0)


def test_park_with_a_ready_time_is_an_error() -> None:
    with pytest.raises(ValueError, match="park"):
        Release("r", Fence("w", 1), ready_at=T0, park=True)


# ---------------------------------------------------------------------------- append consume/send


async def test_append_consumes_exactly_its_items(store: Store) -> None:
    await create(store, "r", owner="w1", lease_expires_at=T0 + 30)
    await create(store, "other")
    a, b, c = [await store.send(item("r", n)) for n in ("a", "b", "c")]
    theirs = await store.send(item("other"))
    # An id of another run's item (and one that does not exist) is ignored.
    consume = (a.id, c.id, theirs.id, c.id + 1000)
    await store.append(Append("r", (event("r", 2),), 1, Fence("w1", 1), consume=consume))
    assert await store.read_inbox(["r", "other"]) == [b, theirs]
    assert [e.seq for e in await store.read_events("r")] == [1, 2]


async def test_a_refused_append_consumes_and_sends_nothing(store: Store) -> None:
    await create(store, "r", owner="w1", lease_expires_at=T0 + 30)
    await parked(store, "parent")
    mine = await store.send(item("r", at=T0))
    before = await must_get(store, "parent")
    note = item("parent", "child-done", at=T0 + 1, kind="child")
    refused: list[tuple[Append, type[Exception], str]] = [
        (
            Append("r", (event("r", 3),), 2, Fence("w1", 1), None, (mine.id,), (note,)),
            SequenceConflictError,
            conflict("r", 2, 1),
        ),
        (
            Append("r", (event("r", 2),), 1, Fence("w1", 0), None, (mine.id,), (note,)),
            LeaseLostError,
            lease_lost("r", "w1", 0, "w1", 1),
        ),
        (
            Append("r", (event("r", 2),), 1, Fence("w2", 1), None, (mine.id,), (note,)),
            LeaseLostError,
            lease_lost("r", "w2", 1, "w1", 1),
        ),
    ]
    for bad, error, message in refused:
        with pytest.raises(error, match=message):
            await store.append(bad)
    assert await store.read_inbox(["r", "parent"]) == [mine]
    assert await must_get(store, "parent") == before  # not woken either
    assert [e.seq for e in await store.read_events("r")] == [1]


async def test_append_sends_to_another_run_and_wakes_it(store: Store) -> None:
    await parked(store, "parent")
    await create(store, "child", owner="w1", lease_expires_at=T0 + 30)
    done = RunUpdate(status="succeeded", result=b"42", finished_at=T0 + 7)
    notes = (
        item("parent", "child", at=T0 + 7, kind="child", key="child:child"),
        item("nobody", "lost", at=T0 + 7),  # an unknown run is skipped, not an error
    )
    await store.append(Append("child", (event("child", 2),), 1, Fence("w1", 1), done, send=notes))
    (got,) = await store.read_inbox(["parent", "nobody", "child"])
    assert got == stored(notes[0], got.id)
    assert (await must_get(store, "parent")).ready_at == T0 + 7
    assert (await must_get(store, "child")).status == "succeeded"
    assert await claimable(store, T0 + 7) == ["parent"]
    # The dedupe key holds for appends too: a repeated completion stores nothing more.
    await create(store, "again")
    again = Append("again", (event("again", 2),), 1, send=(notes[0],))
    await store.append(again)
    assert await store.read_inbox(["parent"]) == [got]


async def test_appends_with_inbox_work_in_one_batch_keep_their_own_outcomes(
    store: Store,
) -> None:
    for run_id in ("a", "b", "c"):
        await create(store, run_id)
    x = await store.send(item("a", "x"))
    y = await store.send(item("b", "y"))
    # Issued together (one group commit where the backend batches): each stands alone.
    futures = [
        store.append(Append("a", (event("a", 2),), 1, consume=(x.id,), send=(item("c", "p"),))),
        store.append(Append("b", (event("b", 9),), 8, consume=(y.id,), send=(item("c", "q"),))),
        store.append(append("c", 1)),
        store.append(Append("a", (event("a", 3),), 2, send=(item("c", "r"),))),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] is None and results[2] is None and results[3] is None
    assert isinstance(results[1], SequenceConflictError)
    assert [(i.run_id, i.name) for i in await store.read_inbox(["a", "b", "c"])] == [
        ("b", "y"),
        ("c", "p"),
        ("c", "r"),
    ]


# ---------------------------------------------------------------------------- prune


async def test_prune_deletes_old_finished_runs_with_their_events_and_inbox(
    store: Store,
) -> None:
    runs = {r: await create(store, r) for r in ("ok", "partial", "failed", "cancelled")}
    for i, (run_id, run) in enumerate(runs.items()):
        await store.send(item(run_id))
        await finish(store, run, at=T0 + 10 + i, status=run_id if run_id != "ok" else "succeeded")
    recent = await create(store, "recent")
    await finish(store, recent, at=T0 + 100)
    await create(store, "live")
    await store.send(item("live"))
    await store.send(item("recent"))
    assert await store.prune_runs(T0 + 100) == 4
    for gone in runs:
        assert await store.get_run(gone) is None
        assert await store.read_events(gone) == []
    assert [i.run_id for i in await store.read_inbox([*runs, "recent", "live"])] == [
        "live",
        "recent",
    ]
    assert len(await store.read_events("recent")) == 2
    assert await store.prune_runs(T0 + 100) == 0
    assert await store.prune_runs(T0 + 101) == 1
    assert await store.get_run("recent") is None
    assert (await must_get(store, "live")).status == "pending"


async def test_prune_keeps_children_their_unfinished_parent_needs(store: Store) -> None:
    await create(store, "parent")
    finished_parent = await create(store, "done-parent")
    await finish(store, finished_parent, at=T0 + 1)
    for child, parent in (("kept", "parent"), ("orphan", "gone"), ("free", "done-parent")):
        row, created = await store.create_run(
            NewRun(child, "wf", "v1", b"", T0, parent_run_id=parent), event(child, 1, at=T0)
        )
        assert created
        await finish(store, row, at=T0 + 2)
    assert await store.prune_runs(T0 + 50) == 3  # done-parent, orphan, free
    assert await store.get_run("kept") is not None
    assert [e.seq for e in await store.read_events("kept")] == [1, 2]
    run = await must_get(store, "parent")
    await finish(store, run, at=T0 + 3)
    assert await store.prune_runs(T0 + 50) == 2
    assert await store.get_run("kept") is None


async def test_prune_respects_limit_oldest_finished_first(store: Store) -> None:
    # Created in one order, finished in the reverse: finishing time decides.
    for i in range(5):
        await create(store, f"r{i}", created_at=T0 + i)
    for i in range(5):
        await finish(store, await must_get(store, f"r{i}"), at=T0 + 100 - i)
    assert await store.prune_runs(T0 + 1_000, limit=2) == 2
    left = sorted(r.run_id for r in await store.list_runs(RunQuery(limit=100)))
    assert left == ["r0", "r1", "r2"]
    assert await store.prune_runs(T0 + 1_000, limit=0) == 0
    assert await store.prune_runs(T0 + 1_000) == 3
    assert await store.list_runs(RunQuery(limit=100)) == []


# ---------------------------------------------------------------------------- workers


async def test_workers_heartbeat_list_expire_and_remove(store: Store) -> None:
    assert await store.list_workers(now=T0) == []
    await store.heartbeat_worker("w2", [("etl", "1"), ("etl", "2")], now=T0, ttl=30)
    await store.heartbeat_worker("w1", [], now=T0 + 5, ttl=10)
    assert await store.list_workers(now=T0 + 6) == [
        WorkerRecord("w1", (), T0 + 5, T0 + 5, T0 + 15),
        WorkerRecord("w2", (("etl", "1"), ("etl", "2")), T0, T0, T0 + 30),
    ]
    # A heartbeat refreshes: new capabilities and last_seen, the same started_at.
    await store.heartbeat_worker("w2", [("report", "3")], now=T0 + 20, ttl=30)
    # w1 expired at T0 + 15 (expires_at > now is live).
    assert await store.list_workers(now=T0 + 15) == [
        WorkerRecord("w2", (("report", "3"),), T0, T0 + 20, T0 + 50),
    ]
    await store.heartbeat_worker("w1", [("etl", "1")], now=T0 + 21, ttl=10)
    assert [w.owner for w in await store.list_workers(now=T0 + 22)] == ["w1", "w2"]
    await store.remove_worker("w2")
    await store.remove_worker("never-was")
    assert [w.owner for w in await store.list_workers(now=T0 + 22)] == ["w1"]
    assert await store.list_workers(now=T0 + 31) == []


# ---------------------------------------------------------------------------- lifecycle


async def test_closed_or_unopened_store_refuses_the_new_calls(store_factory: StoreFactory) -> None:
    unopened = store_factory()
    closed = store_factory()
    await closed.open()
    await create(closed, "r")
    await closed.close()
    for s in (unopened, closed):
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.send(item("r"))
        for run_ids in (["r"], []):
            with pytest.raises(StoreClosedError, match=CLOSED):
                await s.read_inbox(run_ids)
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.prune_runs(T0)
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.heartbeat_worker("w", [], now=T0, ttl=1)
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.list_workers(now=T0)
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.remove_worker("w")
