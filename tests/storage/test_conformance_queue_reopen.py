"""Conformance of reopening (`durable retry`) a queued run, on every backend: the reopened run
waits in its queue again (a new admission, within the limits: it does not keep the slot it
had), and a run whose dedupe key another unfinished run now holds is refused, naming it."""

from __future__ import annotations

import pytest
from storekit import T0, event
from test_conformance_queues import claim, finish, start

from storage import Append, DedupeKeyHeldError, Fence, QueueRecord, RunUpdate, Store


async def fail(store: Store, run_id: str) -> int:
    """End the (claimed) run as failed; its last seq."""
    run = await store.get_run(run_id)
    assert run is not None and run.owner is not None
    seq = run.last_seq + 1
    await store.append(
        Append(
            run_id,
            (event(run_id, seq, "Failed"),),
            run.last_seq,
            Fence(run.owner, run.epoch),
            RunUpdate(status="failed", finished_at=T0 + 20),
        )
    )
    return seq


async def reopen(store: Store, run_id: str, seq: int) -> None:
    await store.reopen_run(
        run_id, event(run_id, seq + 1, "Resumed"), statuses={"failed"}, now=T0 + 30
    )


async def test_a_reopened_queued_run_waits_for_a_slot_again(store: Store) -> None:
    await store.put_queue(QueueRecord("emails", concurrency=1))
    await start(store, "r0")
    await start(store, "r1", at=T0 + 1)
    assert await claim(store, "w1") == ["r0"]
    seq = await fail(store, "r0")
    assert await claim(store, "w1", now=T0 + 25) == ["r1"]  # r0's slot went to r1
    await reopen(store, "r0", seq)
    place = await store.run_queue("r0")
    assert place is not None and place.admitted_at is None
    # The queue is full (r1 holds its one slot): the reopened run is not claimed over it.
    assert await claim(store, "w2", now=T0 + 31) == []
    stats = await store.queue_stats("emails", now=T0 + 31)
    assert (stats.waiting, stats.running) == (1, 1)
    await finish(store, "r1")
    assert await claim(store, "w2", now=T0 + 32) == ["r0"]


async def test_a_reopen_whose_dedupe_key_is_taken_names_the_holder(store: Store) -> None:
    await store.put_queue(QueueRecord("emails"))
    await start(store, "first", dedupe_key="order-7")
    assert await claim(store, "w1") == ["first"]
    seq = await fail(store, "first")
    await start(store, "second", dedupe_key="order-7")  # the key was freed by the failure
    before = await store.get_run("first")
    held = r"^run 'first' cannot be reopened: run 'second' of queue 'emails' now holds"
    with pytest.raises(DedupeKeyHeldError, match=held) as caught:
        await reopen(store, "first", seq)
    assert caught.value.holder == "second"
    assert "second" in str(caught.value) and "order-7" in str(caught.value)
    assert await store.get_run("first") == before  # nothing written
    assert len(await store.read_events("first")) == seq
    # Once the holder ends, the retry goes through.
    assert await claim(store, "w1", now=T0 + 25) == ["second"]
    await finish(store, "second")
    await reopen(store, "first", seq)
    assert await claim(store, "w1", now=T0 + 31) == ["first"]
