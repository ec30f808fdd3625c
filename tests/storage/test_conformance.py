"""The store conformance suite: written once, run against every backend in conftest.BACKENDS.

Every backend must behave identically here; where they could differ (ordering of concurrent
writes, batching), the tests pin down what the protocol promises, not what one backend happens
to do.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from conftest import StoreFactory
from storekit import CLOSED, T0, append, conflict, create, event, lease_lost, must_get, new_run

from storage import (
    Append,
    DatabaseOpenError,
    DatabaseURLError,
    Fence,
    InvalidAppendError,
    LeaseLostError,
    MemoryStore,
    Release,
    RunNotFoundError,
    RunQuery,
    RunUpdate,
    SequenceConflictError,
    SQLiteStore,
    Store,
    StoreClosedError,
    open_store,
)

# ---------------------------------------------------------------------------- create_run


async def test_create_run_returns_new_row_and_stores_first_event(store: Store) -> None:
    first = event("r", 1, "Started", at=T0)
    row, created = await store.create_run(new_run("r", input=b"payload"), first)
    assert created is True
    assert (row.run_id, row.workflow, row.version, row.input) == ("r", "wf", "v1", b"payload")
    assert (row.status, row.owner, row.epoch, row.last_seq) == ("pending", None, 0, 1)
    assert (row.result, row.error, row.finished_at) == (None, None, None)
    # A new run is ready at once: the first claim after creation must be able to take it.
    assert row.ready_at == T0
    assert await store.get_run("r") == row
    assert await store.read_events("r") == [first]


async def test_create_run_with_owner_holds_the_lease(store: Store) -> None:
    row = await create(store, "r", owner="w1", lease_expires_at=T0 + 30)
    assert (row.status, row.owner, row.epoch, row.lease_expires_at) == ("running", "w1", 1, T0 + 30)
    # The creator's fence is valid without a claim round trip ...
    await store.append(append("r", 1, fence=Fence("w1", 1)))
    # ... and nobody else can claim the run while the lease lives.
    assert await store.claim_runs("w2", limit=10, lease_ttl=30, now=T0 + 1) == []


async def test_create_run_with_existing_id_writes_nothing(store: Store) -> None:
    original = await create(store, "r")
    await store.append(append("r", 1, 2))
    before = await must_get(store, "r")
    other = new_run("r", workflow="other", version="v9", created_at=T0 + 50, input=b"x")
    row, created = await store.create_run(other, event("r", 1, "Other", at=T0 + 50))
    assert created is False
    assert row == before != original  # the existing row as it stands now, not a fresh one
    assert await must_get(store, "r") == before
    assert [e.type for e in await store.read_events("r")] == ["Started", "E", "E"]


async def test_concurrent_creates_of_one_id_have_one_winner(store: Store) -> None:
    futures = [
        store.create_run(new_run("r", input=bytes([i])), event("r", 1, f"T{i}")) for i in range(5)
    ]
    results = await asyncio.gather(*futures)
    assert [created for _, created in results] == [True, False, False, False, False]
    assert {row.input for row, _ in results} == {b"\x00"}
    assert [e.type for e in await store.read_events("r")] == ["T0"]


# ---------------------------------------------------------------------------- append


async def test_appends_are_stored_in_order_without_gaps(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1))
    await store.append(append("r", 2, 3))
    await store.append(append("r", 5))
    log = await store.read_events("r")
    assert [e.seq for e in log] == [1, 2, 3, 4, 5, 6]
    assert log[1:] == [event("r", s) for s in range(2, 7)]
    row = await must_get(store, "r")
    assert row.last_seq == 6
    assert row.updated_at == log[-1].created_at


async def test_expected_seq_conflict_raises_and_writes_nothing(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1, 2))
    before = await must_get(store, "r")
    for wrong in (0, 1, 2, 4):
        with pytest.raises(SequenceConflictError, match=conflict("r", wrong, 3)) as info:
            await store.append(append("r", wrong, update=RunUpdate(status="failed")))
        assert (info.value.run_id, info.value.expected, info.value.actual) == ("r", wrong, 3)
    assert await must_get(store, "r") == before
    assert [e.seq for e in await store.read_events("r")] == [1, 2, 3]


async def test_concurrent_appends_at_one_seq_have_exactly_one_winner(store: Store) -> None:
    await create(store, "r")
    # All issued before any is awaited, so a batching backend sees them in one batch.
    futures = [
        store.append(Append("r", (event("r", 2, f"W{i}"),), 1, update=RunUpdate(result=b"%d" % i)))
        for i in range(10)
    ]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    # Writes to one run apply in the order they were issued: the first one wins.
    assert outcomes[0] is None
    for loser in outcomes[1:]:
        assert isinstance(loser, SequenceConflictError)
        assert (loser.expected, loser.actual) == (1, 2)
    assert [e.type for e in await store.read_events("r")] == ["Started", "W0"]
    assert (await must_get(store, "r")).result == b"0"


async def test_consecutive_appends_issued_together_all_succeed(store: Store) -> None:
    await create(store, "r")
    futures = [store.append(append("r", seq)) for seq in range(1, 21)]
    assert await asyncio.gather(*futures) == [None] * 20
    assert [e.seq for e in await store.read_events("r")] == list(range(1, 22))
    assert (await must_get(store, "r")).last_seq == 21


async def test_writes_issued_across_loop_turns_keep_their_order(store: Store) -> None:
    await create(store, "r")
    futures = [store.append(append("r", seq)) for seq in range(1, 11)]
    # Later turns of the loop, while the first batch may still be on its way to disk: a lone
    # write must not overtake it (a backend may commit lone writes by a faster path).
    for seq in range(11, 14):
        await asyncio.sleep(0)
        futures.append(store.append(append("r", seq)))
    assert await asyncio.gather(*futures) == [None] * 13
    assert [e.seq for e in await store.read_events("r")] == list(range(1, 15))


async def test_multi_event_append_is_all_or_nothing(store: Store) -> None:
    await create(store, "r", owner="w1", lease_expires_at=T0 + 30)
    lost = LeaseLostError
    refused: list[tuple[Append, type[Exception], str]] = [
        (append("r", 0, 3, fence=Fence("w1", 1)), SequenceConflictError, conflict("r", 0, 1)),
        # A stale epoch, then someone else's.
        (append("r", 1, 3, fence=Fence("w1", 0)), lost, lease_lost("r", "w1", 0, "w1", 1)),
        (append("r", 1, 3, fence=Fence("w2", 1)), lost, lease_lost("r", "w2", 1, "w1", 1)),
    ]
    for bad, error, message in refused:
        with pytest.raises(error, match=message):
            await store.append(bad)
    assert [e.seq for e in await store.read_events("r")] == [1]
    await store.append(append("r", 1, 3, fence=Fence("w1", 1)))
    assert [e.seq for e in await store.read_events("r")] == [1, 2, 3, 4]


async def test_refused_append_does_not_spoil_its_batch(store: Store) -> None:
    await create(store, "a")
    await create(store, "b")
    # Issued together (one group commit on SQLite): the refusal of one leaves the others whole.
    good_a = store.append(append("a", 1, 2))
    bad_b = store.append(append("b", 7, 2))
    good_b = store.append(append("b", 1, 2))
    await good_a
    with pytest.raises(SequenceConflictError, match=conflict("b", 7, 1)):
        await bad_b
    await good_b
    assert [e.seq for e in await store.read_events("a")] == [1, 2, 3]
    assert [e.seq for e in await store.read_events("b")] == [1, 2, 3]


async def test_run_update_is_applied_with_its_events(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1, update=RunUpdate(status="running")))
    await store.append(append("r", 2, update=RunUpdate(error=b"oops")))
    row = await must_get(store, "r")
    # A None field leaves the column alone: status survives an update that only sets error.
    assert (row.status, row.error, row.result, row.finished_at) == ("running", b"oops", None, None)
    done = RunUpdate(status="succeeded", result=b"42", finished_at=T0 + 99)
    await store.append(append("r", 3, 2, update=done))
    row = await must_get(store, "r")
    assert (row.status, row.result, row.error) == ("succeeded", b"42", b"oops")
    assert (row.finished_at, row.last_seq) == (T0 + 99, 5)


async def test_final_status_makes_a_run_unclaimable(store: Store) -> None:
    for run_id in ("done", "live"):
        await create(store, run_id)
    await store.append(append("done", 1, update=RunUpdate(status="failed", finished_at=T0 + 2)))
    claims = await store.claim_runs("w1", limit=10, lease_ttl=30, now=T0 + 1_000)
    assert [c.run.run_id for c in claims] == ["live"]
    # Not even an explicit release with a ready time puts a finished run back in the queue.
    claimed = await create(store, "done-later", owner="w1", lease_expires_at=T0 + 5)
    await store.append(append("done-later", 1, update=RunUpdate(status="cancelled")))
    await store.release_leases([Release("done-later", Fence("w1", claimed.epoch), T0)])
    # Only the live run, whose lease has lapsed by now, is taken again.
    claims = await store.claim_runs("w2", limit=10, lease_ttl=30, now=T0 + 2_000)
    assert [c.run.run_id for c in claims] == ["live"]


async def test_append_to_unknown_run_raises_run_not_found(store: Store) -> None:
    await create(store, "r")
    for bad in (append("nope", 0), append("nope", 1, fence=Fence("w1", 1))):
        with pytest.raises(RunNotFoundError, match=r"^no run with id 'nope'$") as info:
            await store.append(bad)
        assert info.value.run_id == "nope"
    assert await store.get_run("nope") is None
    assert await store.read_events("nope") == []


async def test_events_must_continue_the_log_they_name(store: Store) -> None:
    """A gap, a repeated seq or another run's event is a caller's bug: refused, nothing
    written, and the log goes on from where it was."""
    await create(store, "r")
    await create(store, "other")
    bad = [  # each with the event the refusal names, and what it should have been
        (Append("r", (event("r", 7),), 1), "'r'#7 should be 'r'#2"),  # a gap after 1
        (Append("r", (event("r", 2), event("r", 2)), 1), "'r'#2 should be 'r'#3"),  # twice
        (Append("r", (event("r", 2), event("r", 4)), 1), "'r'#4 should be 'r'#3"),  # a gap
        (Append("r", (event("other", 2),), 1), "'other'#2 should be 'r'#2"),  # another run's
    ]
    for wrong, named in bad:
        with pytest.raises(
            InvalidAppendError, match=rf"^append to run 'r' after seq 1: event {named}$"
        ):
            await store.append(wrong)
    assert [e.seq for e in await store.read_events("r")] == [1]
    assert (await must_get(store, "r")).last_seq == 1
    assert [e.seq for e in await store.read_events("other")] == [1]
    await store.append(append("r", 1, 2))
    assert [e.seq for e in await store.read_events("r")] == [1, 2, 3]


async def test_append_without_events_checks_and_applies_the_update(store: Store) -> None:
    await create(store, "r", owner="w1", lease_expires_at=T0 + 30)
    with pytest.raises(SequenceConflictError, match=conflict("r", 0, 1)):
        await store.append(Append("r", (), 0))
    with pytest.raises(LeaseLostError, match=lease_lost("r", "w1", 0, "w1", 1)):
        await store.append(Append("r", (), 1, Fence("w1", 0)))
    before = await must_get(store, "r")
    await store.append(Append("r", (), 1, Fence("w1", 1), RunUpdate(status="cancelled")))
    row = await must_get(store, "r")
    assert (row.status, row.last_seq, row.updated_at) == ("cancelled", 1, before.updated_at)
    assert len(await store.read_events("r")) == 1


# ---------------------------------------------------------------------------- reads


async def test_read_events_after_seq(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1, 4))
    assert [e.seq for e in await store.read_events("r", after_seq=2)] == [3, 4, 5]
    assert [e.seq for e in await store.read_events("r", after_seq=0)] == [1, 2, 3, 4, 5]
    assert await store.read_events("r", after_seq=5) == []


async def _five_runs(store: Store) -> list[str]:
    """Runs created at T0+i; two share a timestamp, so run_id must break the tie."""
    spec = [("a", "wf", 1.0), ("b", "other", 2.0), ("c", "wf", 3.0), ("d", "wf", 3.0)]
    spec.append(("e", "other", 4.0))
    for run_id, workflow, offset in spec:
        await create(store, run_id, workflow=workflow, created_at=T0 + offset)
    await store.append(append("c", 1, update=RunUpdate(status="succeeded")))
    return ["e", "d", "c", "b", "a"]


async def test_list_runs_newest_first_with_filters_and_limit(store: Store) -> None:
    newest_first = await _five_runs(store)
    ids = [r.run_id for r in await store.list_runs(RunQuery())]
    assert ids == newest_first
    assert [r.run_id for r in await store.list_runs(RunQuery(limit=2))] == ["e", "d"]
    assert [r.run_id for r in await store.list_runs(RunQuery(workflow="wf"))] == ["d", "c", "a"]
    assert [r.run_id for r in await store.list_runs(RunQuery(status="succeeded"))] == ["c"]
    both = RunQuery(status="pending", workflow="other")
    assert [r.run_id for r in await store.list_runs(both)] == ["e", "b"]
    assert await store.list_runs(RunQuery(workflow="missing")) == []
    assert await store.list_runs(RunQuery(status="running")) == []
    assert [r.run_id for r in await store.list_runs(RunQuery())] == newest_first


async def test_list_runs_keyset_pages_cover_everything_once(store: Store) -> None:
    newest_first = await _five_runs(store)
    seen: list[str] = []
    before: tuple[float, str] | None = None
    for _ in range(len(newest_first)):  # bounded: a non-strict `before` would loop forever
        page = await store.list_runs(RunQuery(limit=2, before=before))
        if not page:
            break
        seen += [r.run_id for r in page]
        before = (page[-1].created_at, page[-1].run_id)
    assert seen == newest_first
    # `before` is strict, and compares (created_at, run_id) as a pair.
    after_d = await store.list_runs(RunQuery(before=(T0 + 3.0, "d")))
    assert [r.run_id for r in after_d] == ["c", "b", "a"]


# ---------------------------------------------------------------------------- leases


async def test_claim_takes_ready_unowned_runs_and_bumps_epoch(store: Store) -> None:
    await create(store, "a")
    await create(store, "b", created_at=T0 + 1)
    await create(store, "held", owner="w0", lease_expires_at=T0 + 100)
    await create(store, "future", created_at=T0 + 500)  # not ready before it was created
    claims = await store.claim_runs("w1", limit=10, lease_ttl=30, now=T0 + 10)
    assert sorted(c.run.run_id for c in claims) == ["a", "b"]
    for c in claims:
        assert c.fence == Fence("w1", 1)
        assert (c.run.owner, c.run.epoch, c.run.lease_expires_at) == ("w1", 1, T0 + 40)
        assert await must_get(store, c.run.run_id) == c.run
    assert await store.claim_runs("w2", limit=10, lease_ttl=30, now=T0 + 20) == []


async def test_claim_takes_expired_leases_and_fences_the_old_owner(store: Store) -> None:
    await create(store, "r")
    (first,) = await store.claim_runs("w1", limit=1, lease_ttl=10, now=T0)
    assert await store.claim_runs("w2", limit=1, lease_ttl=10, now=T0 + 5) == []
    (second,) = await store.claim_runs("w2", limit=1, lease_ttl=10, now=T0 + 11)
    assert (first.fence, second.fence) == (Fence("w1", 1), Fence("w2", 2))
    with pytest.raises(LeaseLostError, match=lease_lost("r", "w1", 1, "w2", 2)) as info:
        await store.append(append("r", 1, 2, fence=first.fence, update=RunUpdate(status="failed")))
    err = info.value
    assert (err.run_id, err.owner, err.epoch) == ("r", "w1", 1)
    assert (err.current_owner, err.current_epoch) == ("w2", 2)
    assert [e.seq for e in await store.read_events("r")] == [1]
    assert (await must_get(store, "r")).status == "pending"
    await store.append(append("r", 1, 2, fence=second.fence))
    # A current fence with a wrong seq is a sequence conflict, not a lost lease.
    with pytest.raises(SequenceConflictError, match=conflict("r", 1, 3)):
        await store.append(append("r", 1, fence=second.fence))


async def test_claim_respects_limit_and_never_hands_out_a_run_twice(store: Store) -> None:
    for i in range(5):
        await create(store, f"r{i}", created_at=T0 + i)
    first = await store.claim_runs("w1", limit=2, lease_ttl=30, now=T0 + 10)
    rest = await store.claim_runs("w2", limit=10, lease_ttl=30, now=T0 + 10)
    assert len(first) == 2
    assert len(rest) == 3
    ids = [c.run.run_id for c in first + rest]
    assert sorted(ids) == [f"r{i}" for i in range(5)]
    assert await store.claim_runs("w1", limit=0, lease_ttl=30, now=T0 + 1_000) == []


async def test_claim_only_eligible_workflow_versions(store: Store) -> None:
    await create(store, "v1", version="v1")
    await create(store, "v2", version="v2")
    await create(store, "other", workflow="other", version="v1")
    assert await store.claim_runs("w", limit=10, lease_ttl=30, now=T0, eligible=[]) == []
    only = await store.claim_runs("w", limit=10, lease_ttl=30, now=T0, eligible=[("wf", "v2")])
    assert [c.run.run_id for c in only] == ["v2"]
    pairs = [("wf", "v1"), ("missing", "v2")]
    more = await store.claim_runs("w", limit=10, lease_ttl=30, now=T0, eligible=pairs)
    assert [c.run.run_id for c in more] == ["v1"]
    anything = await store.claim_runs("w", limit=10, lease_ttl=30, now=T0, eligible=None)
    assert [c.run.run_id for c in anything] == ["other"]


async def test_claim_leaves_out_excluded_runs(store: Store) -> None:
    for run_id in ("a", "b", "c"):
        await create(store, run_id)
    claims = await store.claim_runs("w1", limit=10, lease_ttl=10, now=T0, exclude=["b", "zz"])
    assert sorted(c.run.run_id for c in claims) == ["a", "c"]
    # A worker still executing "a" after its lease lapsed must not fence itself out by
    # re-claiming it: excluded, it keeps its epoch.
    again = await store.claim_runs("w1", limit=10, lease_ttl=10, now=T0 + 20, exclude=["a"])
    assert sorted(c.run.run_id for c in again) == ["b", "c"]
    assert (await must_get(store, "a")).epoch == 1


async def test_excluded_runs_take_no_claim_slot_and_no_other_claimer_is_bound(
    store: Store,
) -> None:
    """A worker executing many runs whose leases lapsed (they come first in claim order) still
    gets `limit` other runs: the exclusion applies before the limit, by exact id, and leaves
    the excluded rows as they were. It binds only the claimer that passes it: another worker
    takes those lapsed runs."""
    held = [f"held-{i:02d}" for i in range(30)]
    await asyncio.gather(*(create(store, run_id, created_at=T0) for run_id in held))
    taken = await store.claim_runs("w1", limit=100, lease_ttl=10, now=T0)
    assert sorted(c.run.run_id for c in taken) == held
    for i, run_id in enumerate(("new-a", "new-b", "new-c", "new-d")):
        await create(store, run_id, created_at=T0 + 5 + i)
    # Lapsed at T0 + 10. Near misses of a new run's id ("new" a prefix, "NEW-A" its case)
    # exclude nothing.
    exclude = [*held, "new", "NEW-A", "new-a%", "missing"]
    claims = await store.claim_runs("w1", limit=3, lease_ttl=10, now=T0 + 20, exclude=exclude)
    assert [c.run.run_id for c in claims] == ["new-a", "new-b", "new-c"]
    for run_id in held:
        row = await must_get(store, run_id)
        assert (row.owner, row.epoch, row.lease_expires_at) == ("w1", 1, T0 + 10)
    others = await store.claim_runs("w2", limit=100, lease_ttl=10, now=T0 + 20)
    assert sorted(c.run.run_id for c in others) == [*held, "new-d"]
    assert {c.fence for c in others if c.run.run_id in held} == {Fence("w2", 2)}


async def test_renew_extends_only_the_owners_unfinished_runs(store: Store) -> None:
    for run_id, owner in (("mine", "w1"), ("done", "w1"), ("theirs", "w2")):
        await create(store, run_id, owner=owner, lease_expires_at=T0 + 10)
    await store.append(append("done", 1, update=RunUpdate(status="succeeded")))
    assert await store.renew_leases("w1", lease_ttl=30, now=T0 + 5) == 1
    leases = {r.run_id: r.lease_expires_at for r in await store.list_runs(RunQuery())}
    assert leases == {"mine": T0 + 35, "done": T0 + 10, "theirs": T0 + 10}
    assert await store.renew_leases("nobody", lease_ttl=30, now=T0 + 5) == 0
    # The renewed lease holds where the old one would have lapsed.
    claims = await store.claim_runs("w3", limit=10, lease_ttl=30, now=T0 + 20)
    assert [c.run.run_id for c in claims] == ["theirs"]


async def test_renew_can_be_limited_to_listed_runs(store: Store) -> None:
    for run_id, owner in (("a", "w1"), ("b", "w1"), ("theirs", "w2")):
        await create(store, run_id, owner=owner, lease_expires_at=T0 + 10)
    assert await store.renew_leases("w1", lease_ttl=30, now=T0, run_ids=[]) == 0
    assert await store.renew_leases("w1", lease_ttl=30, now=T0, run_ids=["a", "theirs"]) == 1
    leases = {r.run_id: r.lease_expires_at for r in await store.list_runs(RunQuery())}
    assert leases == {"a": T0 + 30, "b": T0 + 10, "theirs": T0 + 10}


async def test_release_needs_the_matching_fence(store: Store) -> None:
    await create(store, "r")
    await store.claim_runs("w1", limit=1, lease_ttl=10, now=T0)
    (current,) = await store.claim_runs("w2", limit=1, lease_ttl=10, now=T0 + 20)
    held = await must_get(store, "r")
    stale = [
        Release("r", Fence("w1", 1)),
        Release("r", Fence("w2", 1)),
        Release("r", Fence("w1", 2)),
    ]
    await store.release_leases(stale)
    assert await must_get(store, "r") == held
    await store.release_leases([Release("r", current.fence, ready_at=T0 + 100)])
    row = await must_get(store, "r")
    assert (row.owner, row.lease_expires_at, row.ready_at, row.epoch) == (None, None, T0 + 100, 2)
    # Released with a ready time: nobody takes it before then, anybody after.
    assert await store.claim_runs("w3", limit=1, lease_ttl=10, now=T0 + 99) == []
    (again,) = await store.claim_runs("w3", limit=1, lease_ttl=10, now=T0 + 100)
    assert again.fence == Fence("w3", 3)
    with pytest.raises(LeaseLostError, match=lease_lost("r", "w2", 2, "w3", 3)):
        await store.append(append("r", 1, fence=current.fence))
    # Without a ready time the run is claimable at once.
    await store.release_leases([Release("r", again.fence)])
    assert len(await store.claim_runs("w4", limit=1, lease_ttl=10, now=T0 + 101)) == 1


# ---------------------------------------------------------------------------- lifecycle


async def test_close_flushes_writes_already_issued(store: Store) -> None:
    await create(store, "r")
    futures = [store.append(append("r", seq)) for seq in range(1, 6)]
    await store.close()
    # A bounded wait: a close that dropped queued writes would otherwise hang the suite.
    assert await asyncio.wait_for(asyncio.gather(*futures), timeout=10) == [None] * 5
    await store.open()
    assert [e.seq for e in await store.read_events("r")] == [1, 2, 3, 4, 5, 6]


async def test_closed_or_unopened_store_raises_store_closed(store_factory: StoreFactory) -> None:
    unopened = store_factory()
    closed = store_factory()
    await closed.open()
    await create(closed, "r")
    await closed.close()
    for s in (unopened, closed):
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.create_run(new_run("x"), event("x", 1))
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.append(append("r", 1))
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.read_events("r")
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.get_run("r")
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.list_runs(RunQuery())
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.claim_runs("w", limit=1, lease_ttl=1, now=T0)
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.renew_leases("w", lease_ttl=1, now=T0)
        with pytest.raises(StoreClosedError, match=CLOSED):
            await s.release_leases([Release("r", Fence("w", 1))])


# ---------------------------------------------------------------------------- error translation


async def test_sqlite_in_missing_directory_is_database_open_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(DatabaseOpenError, match=r"does not exist") as info:
        await SQLiteStore(str(missing / "x.db")).open()
    assert str(missing) in str(info.value)
    assert not missing.exists()


async def test_sqlite_on_a_non_database_file_is_database_open_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(DatabaseOpenError, match=r"not a SQLite database") as info:
        await SQLiteStore(str(path)).open()
    assert str(path) in str(info.value)
    assert path.read_bytes() == content  # a failed open must not clobber the user's file


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://host/x.db", "unsupported database URL scheme 'ftp'"),
        ("sqlite://x.db", "bad SQLite URL"),
        ("sqlite:///", "bad SQLite URL"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///x.db?busy_timeout_ms=soon", "busy_timeout_ms must be an integer"),
        ("sqlite:///x.db?journal=delete", "unknown option(s) journal"),
        ("postgresql://me:hunter2@db/prod?pool_size=many", "pool_size and pool_min_size must"),
        ("postgres://me:hunter2@db/prod?schema=a;drop", "schema must be a plain identifier"),
    ],
)
def test_bad_urls_raise_database_url_error(url: str, fragment: str) -> None:
    with pytest.raises(DatabaseURLError, match=re.escape(fragment)) as info:
        open_store(url)
    message = str(info.value)
    assert fragment in message
    assert "hunter2" not in message  # never echo a password into logs


def test_good_urls_name_the_right_store() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    cases = {
        "sqlite:///rel/x.db": ("rel/x.db", "full"),
        "sqlite:////abs/x.db?synchronous=NORMAL": ("/abs/x.db", "normal"),
        "./durable.db": ("./durable.db", "full"),
    }
    for url, (path, synchronous) in cases.items():
        s = open_store(url)
        assert isinstance(s, SQLiteStore)
        assert (s.path, s._synchronous) == (path, synchronous)
