"""Conformance of debounced starts (Store.debounce_run) on every backend: a waiting run is
rearmed (input, first event, version, ready_at, capped by max_wait) and never started early; a
run a claim admitted is never rearmed (the call begins a new burst, the started run gives its
key up); and, on the two SQL backends, several stores of one database calling and claiming at
once: one run per burst, and a run's input never changes once a worker has read it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import msgspec
import pytest
from pgserver import PgSession
from storekit import T0, new_run

from storage import (
    Append,
    EventRecord,
    NewInboxItem,
    QueueRecord,
    RunRecord,
    RunUpdate,
    Store,
    open_store,
)

Q = "debounce"
KEY = "\x1fwf:k"  # as the engine builds them: no user dedupe key can look like it


def call(
    run_id: str, input: bytes, *, at: float, delay: float = 5.0, version: str = "v1"
) -> tuple[object, EventRecord]:
    run = msgspec.structs.replace(
        new_run(run_id, created_at=at, input=input, version=version),
        queue=Q,
        dedupe_key=KEY,
        ready_at=at + delay,
    )
    return run, EventRecord(run_id, 1, "RunStarted", b"started:" + input, at)


async def debounce(
    store: Store,
    run_id: str,
    input: bytes,
    *,
    at: float,
    delay: float = 5.0,
    max_wait: float | None = None,
    version: str = "v1",
) -> tuple[RunRecord, bool]:
    run, first = call(run_id, input, at=at, delay=delay, version=version)
    return await store.debounce_run(run, first, max_wait=max_wait)  # type: ignore[arg-type]


async def claim(store: Store, owner: str, now: float) -> list[str]:
    claims = await store.claim_runs(owner, limit=50, lease_ttl=30.0, now=now)
    return sorted(c.run.run_id for c in claims)


async def test_a_burst_rearms_one_waiting_run_with_the_last_input(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    first, created = await debounce(store, "r1", b"a", at=T0)
    assert created and first.ready_at == T0 + 5
    again, created = await debounce(store, "r2", b"b", at=T0 + 3, version="v2")
    assert not created and again.run_id == "r1"
    assert (again.input, again.version, again.ready_at) == (b"b", "v2", T0 + 8)
    assert (again.created_at, again.last_seq, again.status) == (T0, 1, "pending")
    assert await store.get_run("r2") is None
    # The first event is replaced whole (and its checksum: read_events verifies it).
    (event,) = await store.read_events("r1")
    assert (event.run_id, event.seq, event.type, event.data) == (
        "r1",
        1,
        "RunStarted",
        b"started:b",
    )
    assert event.created_at == T0
    # Not started before the last call's delay, then started once, with the last input.
    assert await claim(store, "w1", T0 + 7.9) == []
    assert await claim(store, "w1", T0 + 8) == ["r1"]


async def test_max_wait_caps_the_burst_from_its_first_call(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    await debounce(store, "r1", b"a", at=T0, max_wait=12.0)
    for i, at in enumerate((T0 + 3, T0 + 6)):
        row, _ = await debounce(store, f"x{i}", b"b", at=at, max_wait=12.0)
        assert row.ready_at == at + 5  # within the cap
    row, _ = await debounce(store, "x9", b"last", at=T0 + 11, max_wait=12.0)
    assert (row.run_id, row.ready_at, row.input) == ("r1", T0 + 12, b"last")
    assert await claim(store, "w1", T0 + 12) == ["r1"]


async def test_a_call_after_admission_begins_a_new_burst(store: Store) -> None:
    await store.put_queue(QueueRecord(Q))
    await debounce(store, "r1", b"a", at=T0)
    assert await claim(store, "w1", T0 + 5) == ["r1"]  # admitted, claimed: started
    second, created = await debounce(store, "r2", b"b", at=T0 + 6)
    assert created and second.run_id == "r2"
    old = await store.get_run("r1")
    assert old is not None and old.input == b"a"
    assert [e.data for e in await store.read_events("r1")] == [b"started:a"]
    # The new burst goes on as a burst: rearmed, not a third run; the first run keeps its slot.
    third, created = await debounce(store, "r3", b"c", at=T0 + 7)
    assert not created and third.run_id == "r2" and third.input == b"c"
    place = await store.run_queue("r1")
    assert place is not None and place.dedupe_key == f"{KEY}#r1"
    assert await claim(store, "w1", T0 + 12) == ["r2"]


async def test_a_run_whose_log_moved_on_is_not_rearmed(store: Store) -> None:
    """A waiting run something appended to (a cancel request, say) is not rewritten."""
    await store.put_queue(QueueRecord(Q))
    await debounce(store, "r1", b"a", at=T0)
    done = EventRecord("r1", 2, "Cancelled", b"x", T0 + 1)
    await store.append(Append("r1", (done,), 1, None, RunUpdate(status="cancelled")))
    row, created = await debounce(store, "r2", b"b", at=T0 + 2)
    assert created and row.run_id == "r2"
    old = await store.get_run("r1")
    assert old is not None and old.input == b"a"


async def test_a_run_with_a_cancel_in_its_inbox_is_not_rearmed(store: Store) -> None:
    """A cancel request ends the burst: the call does not put the cancel off, it begins anew."""
    await store.put_queue(QueueRecord(Q))
    await debounce(store, "r1", b"a", at=T0)
    await store.send(NewInboxItem("r1", "cancel", "cancel", b"", T0 + 1, dedupe_key="cancel"))
    row, created = await debounce(store, "r2", b"b", at=T0 + 2)
    assert created and row.run_id == "r2"
    old = await store.get_run("r1")
    assert old is not None and old.input == b"a" and old.ready_at == T0 + 1


async def test_bad_calls_are_refused(store: Store) -> None:
    plain = new_run("r1")
    with pytest.raises(ValueError, match="dedupe_key"):
        await store.debounce_run(plain, EventRecord("r1", 1, "RunStarted", b"", T0))


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database URL several stores open (as other processes would)."""
    if request.param == "postgres":
        schemas: PgSession = request.getfixturevalue("pg_schema_factory")
        return schemas.fresh_url()
    return f"sqlite:///{tmp_path / 'shared.db'}"


async def test_many_stores_calling_at_once_make_one_run_per_burst(shared_url: str) -> None:
    stores = [open_store(shared_url) for _ in range(5)]
    for s in stores:
        await s.open()
    try:
        await stores[0].put_queue(QueueRecord(Q))
        calls = [
            debounce(s, f"s{n}c{i}", f"{n}.{i}".encode(), at=T0 + i)
            for i in range(10)
            for n, s in enumerate(stores)
        ]
        results = await asyncio.gather(*calls)
        assert sum(created for _, created in results) == 1
        assert len({row.run_id for row, _ in results}) == 1
        # Each call wrote its own input (the row it got back is the one it left): no call was
        # folded into another's without rearming.
        sent = [f"{n}.{i}".encode() for i in range(10) for n in range(len(stores))]
        assert [row.input for row, _ in results] == sent
        (row, _) = results[0]
        final = await stores[0].get_run(row.run_id)
        assert final is not None and final.last_seq == 1
        (event,) = await stores[0].read_events(row.run_id)
        assert event.data == b"started:" + final.input  # the row and its log agree
    finally:
        for s in stores:
            await s.close()


async def test_a_rearm_never_changes_a_run_a_worker_took(shared_url: str) -> None:
    """Callers rearm while workers claim, with no delay: every run a worker took keeps the
    input the worker read at its claim, and every call's run is one that exists."""
    stores = [open_store(shared_url) for _ in range(4)]
    for s in stores:
        await s.open()
    seen: dict[str, bytes] = {}
    stop = asyncio.Event()

    async def caller(n: int, s: Store) -> list[str]:
        ids = []
        for i in range(25):
            row, _ = await debounce(s, f"s{n}c{i}", f"{n}.{i}".encode(), at=T0, delay=0.0)
            ids.append(row.run_id)
            await asyncio.sleep(random.random() / 200)
        return ids

    async def worker(n: int, s: Store) -> None:
        while not stop.is_set():
            for c in await s.claim_runs(f"w{n}", limit=10, lease_ttl=30.0, now=T0 + 1):
                (event,) = await s.read_events(c.run.run_id)
                seen[c.run.run_id] = event.data
            await asyncio.sleep(0.001)

    try:
        await stores[0].put_queue(QueueRecord(Q))
        workers = [asyncio.create_task(worker(n, s)) for n, s in enumerate(stores[2:])]
        returned = await asyncio.gather(*(caller(n, s) for n, s in enumerate(stores[:2])))
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*workers)
        assert len(seen) >= 2  # bursts did end in runs, and new ones began
        for run_id, data in seen.items():
            (event,) = await stores[0].read_events(run_id)
            run = await stores[0].get_run(run_id)
            assert run is not None
            assert (event.data, b"started:" + run.input) == (data, data), run_id
        for run_id in {r for ids in returned for r in ids}:
            assert await stores[0].get_run(run_id) is not None
    finally:
        for s in stores:
            await s.close()
