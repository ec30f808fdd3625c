"""Conformance of the writes behind `durable fork` and `durable retry`: create_run with a
history (a run born with a copied log prefix) and reopen_run (a finished run resumed in place).
Written once, run against every backend in conftest (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from storekit import T0, append, conflict, create, event, events, lease_lost, must_get, new_run

from storage import (
    EventRecord,
    Fence,
    InvalidAppendError,
    LeaseLostError,
    NewInboxItem,
    NewRun,
    RunNotFoundError,
    RunRecord,
    RunStatusError,
    RunUpdate,
    SequenceConflictError,
    Store,
)

RETRYABLE = ("failed", "partial")


async def finished(
    store: Store, run_id: str, *, status: str = "failed", at: float = T0 + 10
) -> RunRecord:
    """A run that was claimed, took two steps and finished with `status` (result and error
    set, still leased by its worker, as the engine leaves it): last_seq 3."""
    await create(store, run_id)
    (claim,) = await store.claim_runs("w1", limit=1, lease_ttl=30, now=T0)
    assert claim.run.run_id == run_id
    update = RunUpdate(status=status, result=b"res", error=b"err", finished_at=at)
    await store.append(append(run_id, 1, 2, fence=claim.fence, update=update))
    row = await must_get(store, run_id)
    assert (row.status, row.owner, row.epoch, row.last_seq) == (status, "w1", 1, 3)
    assert (row.result, row.error, row.finished_at) == (b"res", b"err", at)
    return row


async def reopen(store: Store, run_id: str, seq: int, *, now: float = T0 + 20) -> RunRecord:
    return await store.reopen_run(
        run_id, event(run_id, seq, "Reopened", at=now), statuses=RETRYABLE, now=now
    )


async def unchanged(store: Store, run_id: str, row: RunRecord, log: list[EventRecord]) -> None:
    assert await must_get(store, run_id) == row
    assert await store.read_events(run_id) == log


# ---------------------------------------------------------------------------- create with history


async def test_create_run_with_history_stores_the_whole_log_at_once(store: Store) -> None:
    first = event("fork", 1, "Started", at=T0)
    history = events("fork", 2, 4)
    row, created = await store.create_run(new_run("fork", input=b"copied"), first, history)
    assert created is True
    assert (row.status, row.owner, row.epoch, row.last_seq) == ("pending", None, 0, 5)
    assert (row.input, row.ready_at, row.created_at) == (b"copied", T0, T0)
    assert await must_get(store, "fork") == row
    assert await store.read_events("fork") == [first, *history]
    assert await store.read_events("fork", after_seq=3) == list(history[2:])
    # The log goes on from the last copied event, and only from there.
    with pytest.raises(SequenceConflictError, match=conflict("fork", 1, 5)):
        await store.append(append("fork", 1))
    await store.append(append("fork", 5))
    assert (await must_get(store, "fork")).last_seq == 6


async def test_create_run_with_history_and_an_owner_holds_the_lease(store: Store) -> None:
    run = new_run("fork", owner="w1", lease_expires_at=T0 + 30)
    row, created = await store.create_run(run, event("fork", 1), events("fork", 2, 2))
    assert created and (row.status, row.owner, row.epoch, row.last_seq) == ("running", "w1", 1, 3)
    await store.append(append("fork", 3, fence=Fence("w1", 1)))
    assert [e.seq for e in await store.read_events("fork")] == [1, 2, 3, 4]


async def test_create_run_history_is_ignored_for_an_existing_run(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1))
    before = await must_get(store, "r")
    log = await store.read_events("r")
    other = new_run("r", workflow="other", input=b"x")
    row, created = await store.create_run(other, event("r", 1, "Other"), events("r", 2, 3, "H"))
    assert created is False
    assert row == before
    await unchanged(store, "r", before, log)


@pytest.mark.parametrize(
    "history",
    [
        pytest.param((event("fork", 3),), id="gap-after-first"),
        pytest.param((event("fork", 2), event("fork", 4)), id="gap-inside"),
        pytest.param((event("fork", 2), event("fork", 2)), id="repeated-seq"),
        pytest.param((event("fork", 1),), id="repeats-first"),
        pytest.param((event("fork", 2), event("other", 3)), id="wrong-run"),
    ],
)
async def test_create_run_with_a_bad_history_writes_nothing(
    store: Store, history: tuple[EventRecord, ...]
) -> None:
    with pytest.raises(InvalidAppendError, match=r"^history of new run 'fork' after seq 1: "):
        await store.create_run(new_run("fork"), event("fork", 1), history)
    assert await store.get_run("fork") is None
    assert await store.read_events("fork") == []
    assert await store.read_events("other") == []
    # Nothing half-written blocks a correct create under the same id.
    row, created = await store.create_run(new_run("fork"), event("fork", 1), events("fork", 2, 1))
    assert created and row.last_seq == 2


async def test_a_bad_history_is_refused_even_for_an_existing_run(store: Store) -> None:
    before = await create(store, "r")
    with pytest.raises(InvalidAppendError, match=r"event 'r'#5 should be 'r'#2$"):
        await store.create_run(new_run("r"), event("r", 1), (event("r", 5),))
    await unchanged(store, "r", before, [event("r", 1, "Started", at=T0)])


async def test_a_bad_history_does_not_fail_writes_batched_with_it(store: Store) -> None:
    await create(store, "a")
    # Made in one turn of the loop: a group-committing backend puts them in one transaction.
    results = await asyncio.gather(
        store.create_run(new_run("bad"), event("bad", 1), (event("bad", 3),)),
        store.create_run(new_run("good"), event("good", 1), events("good", 2, 2)),
        store.append(append("a", 1)),
        return_exceptions=True,
    )
    assert isinstance(results[0], InvalidAppendError)
    assert not isinstance(results[1], BaseException) and results[1][1] is True
    assert results[2] is None
    assert await store.get_run("bad") is None
    assert [e.seq for e in await store.read_events("good")] == [1, 2, 3]
    assert (await must_get(store, "a")).last_seq == 2


# ---------------------------------------------------------------------------- reopen


@pytest.mark.parametrize("status", RETRYABLE)
async def test_reopen_resets_the_row_appends_the_event_and_makes_it_claimable(
    store: Store, status: str
) -> None:
    old = await finished(store, "r", status=status)
    now = T0 + 20
    row = await reopen(store, "r", 4, now=now)
    assert (row.status, row.result, row.error, row.finished_at) == ("pending", None, None, None)
    assert (row.owner, row.lease_expires_at) == (None, None)
    assert (row.ready_at, row.updated_at, row.last_seq) == (now, now, 4)
    assert row.epoch == old.epoch == 1  # unchanged: the next claim increments it
    # What does not change: identity, input, creation.
    same = ("run_id", "workflow", "version", "input", "parent_run_id", "created_at")
    assert [getattr(row, f) for f in same] == [getattr(old, f) for f in same]
    assert await must_get(store, "r") == row
    log = await store.read_events("r")
    assert [e.seq for e in log] == [1, 2, 3, 4]
    assert log[-1] == event("r", 4, "Reopened", at=now)

    # Not before its ready_at ...
    assert await store.claim_runs("w2", limit=10, lease_ttl=30, now=now - 1) == []
    # ... then at once, by anyone, under a new epoch that fences out the old holder.
    (claim,) = await store.claim_runs("w2", limit=10, lease_ttl=30, now=now)
    assert claim.run.run_id == "r" and claim.fence == Fence("w2", 2)
    with pytest.raises(LeaseLostError, match=lease_lost("r", "w1", 1, "w2", 2)):
        await store.append(append("r", 4, fence=Fence("w1", 1)))
    await store.append(append("r", 4, fence=claim.fence))
    assert (await must_get(store, "r")).last_seq == 5


async def test_reopen_of_a_wrong_status_is_refused_and_writes_nothing(store: Store) -> None:
    done = await finished(store, "done", status="succeeded")
    done_log = await store.read_events("done")
    with pytest.raises(RunStatusError, match=r"^run 'done' is succeeded, not ") as info:
        await reopen(store, "done", 4)
    err = info.value
    assert (err.run_id, err.status, err.expected) == ("done", "succeeded", RETRYABLE)
    assert str(err) == "run 'done' is succeeded, not failed or partial: it cannot be reopened"
    await unchanged(store, "done", done, done_log)

    # An unfinished run is no exception, however it is held.
    live = await create(store, "live")
    with pytest.raises(RunStatusError, match=r"^run 'live' is pending, not ") as info:
        await reopen(store, "live", 2)
    assert info.value.status == "pending"
    await unchanged(store, "live", live, [event("live", 1, "Started", at=T0)])

    # The caller decides which statuses may be reopened.
    row = await store.reopen_run(
        "done", event("done", 4, at=T0 + 20), statuses={"succeeded"}, now=T0 + 20
    )
    assert (row.status, row.last_seq) == ("pending", 4)


async def test_reopen_of_an_unknown_run_is_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match=r"^no run with id 'ghost'$") as info:
        await reopen(store, "ghost", 2)
    assert info.value.run_id == "ghost"
    assert await store.get_run("ghost") is None
    assert await store.read_events("ghost") == []


@pytest.mark.parametrize("seq", [1, 3, 5, 9])
async def test_reopen_with_a_stale_seq_is_a_conflict_and_writes_nothing(
    store: Store, seq: int
) -> None:
    row = await finished(store, "r")
    log = await store.read_events("r")
    with pytest.raises(SequenceConflictError, match=conflict("r", seq - 1, 3)) as info:
        await reopen(store, "r", seq)
    assert (info.value.run_id, info.value.expected, info.value.actual) == ("r", seq - 1, 3)
    await unchanged(store, "r", row, log)


async def test_reopen_with_another_runs_event_is_refused(store: Store) -> None:
    row = await finished(store, "r")
    log = await store.read_events("r")
    with pytest.raises(InvalidAppendError, match=r"^reopen of run 'r' after seq 3: event 'x'#4 "):
        await store.reopen_run("r", event("x", 4), statuses=RETRYABLE, now=T0 + 20)
    await unchanged(store, "r", row, log)


async def test_only_one_of_two_concurrent_reopens_wins(store: Store) -> None:
    await finished(store, "r")
    results = await asyncio.gather(
        reopen(store, "r", 4, now=T0 + 20),
        reopen(store, "r", 4, now=T0 + 21),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, RunRecord)]
    assert len(wins) == 1, results
    # The loser found the run reopened: no longer failed (or, had it got there, a moved log).
    assert all(
        isinstance(r, RunStatusError | SequenceConflictError) for r in results if r not in wins
    )
    assert await must_get(store, "r") == wins[0]
    assert [e.seq for e in await store.read_events("r")] == [1, 2, 3, 4]


async def test_reopen_leaves_the_inbox_alone(store: Store) -> None:
    await finished(store, "r")
    sent = await store.send(NewInboxItem("r", "signal", "go", b"p", T0 + 15))
    await reopen(store, "r", 4)
    assert await store.read_inbox(["r"]) == [sent]


async def test_a_reopened_run_is_not_pruned(store: Store) -> None:
    await finished(store, "r", at=T0 + 10)
    await finished(store, "other", at=T0 + 10)
    await reopen(store, "r", 4, now=T0 + 20)
    assert await store.prune_runs(T0 + 1_000) == 1  # "other" only
    assert await store.get_run("other") is None
    assert (await must_get(store, "r")).status == "pending"
    assert [e.seq for e in await store.read_events("r")] == [1, 2, 3, 4]


async def test_children_of_a_reopened_parent_are_not_pruned(store: Store) -> None:
    for parent in ("retried", "left"):
        await finished(store, parent)
        child = f"{parent}-child"
        _, created = await store.create_run(
            NewRun(child, "wf", "v1", b"", T0, parent_run_id=parent), event(child, 1, at=T0)
        )
        assert created
        update = RunUpdate(status="succeeded", finished_at=T0 + 5)
        await store.append(append(child, 1, update=update))
    await reopen(store, "retried", 4)
    # The retried parent may need its finished child again; the other pair goes.
    assert await store.prune_runs(T0 + 1_000) == 2
    assert await store.get_run("left") is None and await store.get_run("left-child") is None
    assert await store.get_run("retried-child") is not None
