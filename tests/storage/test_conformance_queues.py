"""Conformance of queues on every backend: declarations, queued creation (delay, dedupe), and
admission by the claim: global and per-worker concurrency, priority, partitions (fairness),
the rate window; the race of many stores admitting one queue on the two SQL backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from pgserver import PgSession
from storekit import T0, event, new_run

from storage import (
    Append,
    Fence,
    QueuedRun,
    QueueRecord,
    RunQueue,
    RunRecord,
    RunUpdate,
    Store,
    open_store,
)


def queued(run_id: str, queue: str = "emails", *, at: float = T0, **extra: object) -> object:
    return msgspec.structs.replace(new_run(run_id, created_at=at), queue=queue, **extra)


async def start(store: Store, run_id: str, queue: str = "emails", **extra: object) -> RunRecord:
    at = float(extra.pop("at", T0))  # type: ignore[arg-type]
    run = queued(run_id, queue, at=at, **extra)
    record, created = await store.create_run(run, event(run_id, 1, "Started", at=at))  # type: ignore[arg-type]
    assert created, record
    return record


async def claim(store: Store, owner: str, *, now: float = T0 + 10, limit: int = 50) -> list[str]:
    claims = await store.claim_runs(owner, limit=limit, lease_ttl=30.0, now=now)
    return sorted(c.run.run_id for c in claims)


async def finish(store: Store, run_id: str) -> None:
    run = await store.get_run(run_id)
    assert run is not None and run.owner is not None

    await store.append(
        Append(
            run_id,
            (event(run_id, run.last_seq + 1, "Done"),),
            run.last_seq,
            Fence(run.owner, run.epoch),
            RunUpdate(status="succeeded", finished_at=T0 + 20),
        )
    )


async def test_declare_get_list_replace(store: Store) -> None:
    assert await store.list_queues() == []
    await store.put_queue(QueueRecord("emails", concurrency=10, worker_concurrency=2))
    await store.put_queue(QueueRecord("a", rate_limit=5, rate_period=60.0))
    await store.put_queue(QueueRecord("emails", concurrency=3, updated_at=T0))
    assert [q.name for q in await store.list_queues()] == ["a", "emails"]
    assert await store.get_queue("emails") == QueueRecord("emails", concurrency=3, updated_at=T0)
    assert await store.get_queue("nope") is None


async def test_waiting_run_is_claimed_only_when_its_queue_is_declared(store: Store) -> None:
    await start(store, "r1")
    assert await claim(store, "w1") == []
    await store.put_queue(QueueRecord("emails"))
    assert await claim(store, "w1") == ["r1"]
    stats = await store.queue_stats("emails", now=T0 + 10)
    assert (stats.waiting, stats.running) == (0, 1)


async def test_global_concurrency_holds_slots_until_the_runs_end(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=2))
    for i in range(5):
        await start(store, f"r{i}", at=T0 + i)
    assert await claim(store, "w1") == ["r0", "r1"]
    assert await claim(store, "w2") == []  # full: another worker admits nothing
    stats = await store.queue_stats("emails", now=T0 + 10)
    assert (stats.waiting, stats.running, stats.oldest_waiting) == (3, 2, T0 + 2)
    await finish(store, "r0")
    assert await claim(store, "w2") == ["r2"]


async def test_an_admitted_run_whose_lease_expired_is_reclaimed_without_a_new_slot(
    store: Store,
) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=1))
    await start(store, "r0")
    await start(store, "r1", at=T0 + 1)
    assert await claim(store, "w1") == ["r0"]
    # w1 died: after the lease, w2 takes r0 over; r1 still waits (r0 holds the one slot).
    assert await claim(store, "w2", now=T0 + 100) == ["r0"]
    stats = await store.queue_stats("emails", now=T0 + 100)
    assert (stats.waiting, stats.running) == (1, 1)


async def test_worker_concurrency(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=5, worker_concurrency=2))
    for i in range(6):
        await start(store, f"r{i}", at=T0 + i)
    assert await claim(store, "w1") == ["r0", "r1"]
    assert await claim(store, "w1") == []
    assert await claim(store, "w2") == ["r2", "r3"]
    assert await claim(store, "w3") == ["r4"]  # the global 5 now


async def test_higher_priority_queued_later_is_admitted_first(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=1))
    await start(store, "low", at=T0)
    await start(store, "high", at=T0 + 5, priority=7)
    assert await claim(store, "w1") == ["high"]


async def test_delay_puts_off_admission(store: Store) -> None:
    await store.put_queue(QueueRecord("emails"))
    await start(store, "later", ready_at=T0 + 30)
    assert await claim(store, "w1", now=T0 + 29) == []
    assert await claim(store, "w1", now=T0 + 30) == ["later"]


async def test_dedupe_returns_the_live_holder_then_frees_the_key(store: Store) -> None:
    await store.put_queue(QueueRecord("emails"))
    await start(store, "first", dedupe_key="order-7")
    run = queued("second", dedupe_key="order-7")
    record, created = await store.create_run(run, event("second", 1, "Started"))  # type: ignore[arg-type]
    assert not created and record.run_id == "first"
    assert await store.get_run("second") is None
    # The same key in another queue is another key.
    await start(store, "other", "bulk", dedupe_key="order-7")
    assert await claim(store, "w1") == ["first"]
    await finish(store, "first")
    await start(store, "third", dedupe_key="order-7")


async def test_partitions_share_the_slots_fairly(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=2))
    for i in range(20):
        await start(store, f"big{i:02}", at=T0 + i, partition_key="tenant-big")
    await start(store, "small", at=T0 + 50, partition_key="tenant-small")
    assert await claim(store, "w1", now=T0 + 60) == ["big00", "small"]


async def test_a_freed_slot_goes_to_the_partition_holding_fewest(store: Store) -> None:
    # Slots free one at a time (a worker admits as soon as a run ends): the partition with
    # the fewest admitted runs goes first, or the big tenant's next-oldest would win every
    # single-slot admission by age and the small tenant would wait behind all of them.
    await store.put_queue(QueueRecord("emails", concurrency=2))
    for i in range(20):
        await start(store, f"big{i:02}", at=T0 + i, partition_key="tenant-big")
    assert await claim(store, "w1", now=T0 + 30) == ["big00", "big01"]
    await start(store, "small", at=T0 + 50, partition_key="tenant-small")
    await finish(store, "big00")
    assert await claim(store, "w1", now=T0 + 60, limit=1) == ["small"]
    await finish(store, "big01")
    assert await claim(store, "w1", now=T0 + 61, limit=1) == ["big02"]


async def test_partition_concurrency(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", partition_concurrency=1))
    for i in range(3):
        await start(store, f"a{i}", at=T0 + i, partition_key="a")
    await start(store, "b0", at=T0 + 5, partition_key="b")
    assert await claim(store, "w1") == ["a0", "b0"]
    assert await claim(store, "w2") == []
    await finish(store, "a0")
    assert await claim(store, "w2") == ["a1"]


async def test_rate_limit_counts_admissions_in_the_window(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", rate_limit=2, rate_period=10.0))
    for i in range(5):
        await start(store, f"r{i}", at=T0 + i)
    assert await claim(store, "w1", now=T0 + 10) == ["r0", "r1"]
    await finish(store, "r0")
    await finish(store, "r1")
    assert await claim(store, "w1", now=T0 + 15) == []  # still 2 in (5, 15]
    assert await claim(store, "w1", now=T0 + 20.5) == ["r2", "r3"]


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database URL several stores open (as other processes would)."""
    if request.param == "postgres":
        schemas: PgSession = request.getfixturevalue("pg_schema_factory")
        return schemas.fresh_url()
    return f"sqlite:///{tmp_path / 'shared.db'}"


async def test_many_stores_never_admit_over_the_limit(shared_url: str) -> None:
    """Five stores of one database claim at once, round after round, finishing what they
    hold: the queue's 3 is never exceeded, and every run is admitted exactly once."""
    stores = [open_store(shared_url) for _ in range(5)]
    for s in stores:
        await s.open()
    first = stores[0]
    try:
        await first.put_queue(QueueRecord("emails", concurrency=3))
        for i in range(30):
            await start(first, f"r{i:02}", at=T0 + i)
        admitted: list[str] = []
        for round_ in range(15):
            now = T0 + 100 + round_
            results = await asyncio.gather(
                *(claim(s, f"w{n}", now=now) for n, s in enumerate(stores))
            )
            got = [r for ids in results for r in ids]
            stats = await first.queue_stats("emails", now=now)
            assert stats.running <= 3 and len(got) <= 3, (round_, got)
            admitted += got
            for run_id in got:
                await finish(first, run_id)
        assert sorted(admitted) == [f"r{i:02}" for i in range(30)]
    finally:
        for s in stores:
            await s.close()


async def test_run_queue_gives_a_waiting_run_its_place(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=1))
    await start(store, "old", at=T0)
    await start(store, "mid", at=T0 + 1, partition_key="t1", dedupe_key="k")
    await start(store, "urgent", at=T0 + 2, priority=3)
    assert await store.run_queue("nope") is None
    place = await store.run_queue("mid")
    assert place == RunQueue("emails", 0, "t1", "k", None, 2)  # urgent, then old, before it
    assert (await store.run_queue("urgent")).ahead == 0  # type: ignore[union-attr]
    assert await claim(store, "w1") == ["urgent"]
    admitted = await store.run_queue("urgent")
    assert admitted is not None and admitted.admitted_at == T0 + 10 and admitted.ahead == 0
    assert (await store.run_queue("mid")).ahead == 1  # type: ignore[union-attr]


async def test_queues_take_turns_by_their_oldest_waiting_run(store: Store) -> None:
    # A worker with one free slot and two queues: the queue whose waiting run is older goes
    # first, whatever the names. (In name order, an unlimited queue "a" that always has work
    # would take every slot and "z" would never start.)
    await store.put_queue(QueueRecord("a"))
    await store.put_queue(QueueRecord("z"))
    await start(store, "z1", "z", at=T0)
    for i in range(3):
        await start(store, f"a{i}", "a", at=T0 + 1 + i)
    assert await claim(store, "w1", limit=1) == ["z1"]
    assert await claim(store, "w1", limit=1) == ["a0"]


async def test_queue_runs_lists_the_admitted_and_the_waiting_in_order(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=2))
    await store.put_queue(QueueRecord("other"))
    await start(store, "old", at=T0)
    await start(store, "mid", at=T0 + 1, partition_key="t1")
    await start(store, "urgent", at=T0 + 2, priority=3)
    await start(store, "late", at=T0 + 3)
    await start(store, "elsewhere", "other", at=T0)
    waiting = await store.queue_runs("emails", waiting=True, limit=10)
    assert [r.run_id for r in waiting] == ["urgent", "old", "mid", "late"]
    mid = waiting[2]
    assert mid == QueuedRun("mid", "wf", "pending", 0, "t1", None, mid.ready_at, T0 + 1)
    assert waiting[0].priority == 3
    assert await store.queue_runs("emails", waiting=False, limit=10) == []
    assert [r.run_id for r in await store.queue_runs("emails", waiting=True, limit=2)] == [
        "urgent",
        "old",
    ]
    # Partitions take turns (urgent is the no-partition runs' first, mid t1's first): the
    # claim admits urgent and mid, which the list shows by admission, then priority.
    assert await claim(store, "w1", now=T0 + 10) == ["elsewhere", "mid", "urgent"]
    admitted = await store.queue_runs("emails", waiting=False, limit=10)
    assert [(r.run_id, r.admitted_at) for r in admitted] == [("urgent", T0 + 10), ("mid", T0 + 10)]
    assert [r.run_id for r in await store.queue_runs("emails", waiting=True, limit=10)] == [
        "old",
        "late",
    ]
    await finish(store, "urgent")  # a finished run is no longer listed
    assert [r.run_id for r in await store.queue_runs("emails", waiting=False, limit=10)] == ["mid"]
    assert await store.queue_runs("nope", waiting=True, limit=10) == []


async def test_a_queued_run_record_names_its_queue(store: Store) -> None:
    # Workers learn from the record that ending the run frees a slot (and wake admissions).
    created = await start(store, "q1")
    assert created.queue == "emails"
    await store.put_queue(QueueRecord("emails"))
    claims = await store.claim_runs("w1", limit=5, lease_ttl=30.0, now=T0 + 10)
    assert [c.run.queue for c in claims] == ["emails"]
    got = await store.get_run("q1")
    assert got is not None and got.queue == "emails"


async def test_next_admission_is_when_a_delay_ends_or_the_rate_window_frees(
    store: Store,
) -> None:
    assert await store.next_admission(now=T0) is None
    await store.put_queue(QueueRecord("later"))
    await start(store, "d1", "later", ready_at=T0 + 50)
    await start(store, "d2", "later", ready_at=T0 + 40)
    assert await store.next_admission(now=T0 + 10) == T0 + 40
    # A rate-limited queue that admitted its 2 in the window, and a third waits: the window
    # frees a start when its oldest admission leaves it.
    await store.put_queue(QueueRecord("rated", rate_limit=2, rate_period=60.0))
    for i in range(3):
        await start(store, f"r{i}", "rated", at=T0 + i)
    assert await claim(store, "w1", now=T0 + 12, limit=2) == ["r0", "r1"]
    assert await store.next_admission(now=T0 + 13) == T0 + 40  # the sooner of the two
    # Past the delays, only the window is left; with nothing waiting, nothing.
    assert await store.next_admission(now=T0 + 55) == T0 + 72
    # (r0 and r1 come back too: their leases ran out meanwhile.)
    assert {"d1", "d2", "r2"} <= set(await claim(store, "w1", now=T0 + 73))
    assert await store.next_admission(now=T0 + 74) is None
