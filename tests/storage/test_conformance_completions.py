"""durable_completions, every backend: the row is written by the append that opens the wait
(all or nothing with it), and settled exactly once, with its inbox item, by whoever commits
first; a wrong nonce, a settled row or an ended run change nothing."""

from __future__ import annotations

import asyncio

import pytest
from storekit import T0, conflict, event, new_run

from storage import (
    Append,
    Fence,
    NewCompletion,
    NewInboxItem,
    RunUpdate,
    SequenceConflictError,
    Store,
)


def _item(run_id: str, pos: int, payload: bytes = b"done") -> NewInboxItem:
    return NewInboxItem(run_id, "external", str(pos), payload, T0 + 5, f"external:{pos}")


async def _opened(store: Store, run_id: str = "r") -> Fence:
    run, _ = await store.create_run(
        new_run(run_id, owner="w", lease_expires_at=T0 + 1e9), event(run_id, 1)
    )
    fence = Fence("w", run.epoch)
    wait = NewCompletion(pos=0, name="payment", nonce="n0nce", deadline=T0 + 60, created_at=T0)
    await store.append(Append(run_id, (event(run_id, 2),), 1, fence=fence, completions=(wait,)))
    return fence


async def test_the_first_settle_wins_and_sends_its_item(store: Store) -> None:
    await _opened(store)
    [row] = await store.list_completions("r")
    assert (row.pos, row.name, row.status, row.deadline, row.settled_at) == (
        0, "payment", "waiting", T0 + 60, None,
    )  # fmt: skip
    won = await store.settle_completion(
        "r", 0, "n0nce", status="completed", now=T0 + 5, item=_item("r", 0)
    )
    assert won.won and won.record is not None and won.record.status == "completed"
    assert won.record.settled_at == T0 + 5 and won.run_status == "running"
    [item] = await store.read_inbox(["r"])
    assert (item.kind, item.name, item.payload) == ("external", "0", b"done")
    lost = await store.settle_completion(
        "r", 0, "n0nce", status="timed_out", now=T0 + 6, item=_item("r", 0, b"late")
    )
    assert not lost.won and lost.record is not None and lost.record.status == "completed"
    assert [i.payload for i in await store.read_inbox(["r"])] == [b"done"]


async def test_a_wrong_nonce_or_unknown_wait_changes_nothing(store: Store) -> None:
    await _opened(store)
    wrong = await store.settle_completion(
        "r", 0, "guess", status="completed", now=T0, item=_item("r", 0)
    )
    assert not wrong.won and wrong.record is not None and wrong.record.status == "waiting"
    missing = await store.settle_completion(
        "r", 7, "n0nce", status="completed", now=T0, item=_item("r", 7)
    )
    assert not missing.won and missing.record is None and missing.run_status == "running"
    nobody = await store.settle_completion(
        "nope", 0, "n0nce", status="completed", now=T0, item=_item("nope", 0)
    )
    assert nobody == type(nobody)(False, None, None)
    assert await store.read_inbox(["r"]) == []
    with pytest.raises(ValueError, match="settles as one of"):
        await store.settle_completion("r", 0, "n0nce", status="odd", now=T0, item=_item("r", 0))


async def test_an_ended_run_takes_no_completion(store: Store) -> None:
    fence = await _opened(store)
    await store.append(
        Append("r", (event("r", 3),), 2, fence=fence, update=RunUpdate(status="succeeded"))
    )
    late = await store.settle_completion(
        "r", 0, "n0nce", status="completed", now=T0, item=_item("r", 0)
    )
    assert not late.won and late.run_status == "succeeded"
    assert late.record is not None and late.record.status == "waiting"


async def test_a_refused_append_opens_no_wait(store: Store) -> None:
    run, _ = await store.create_run(
        new_run("r", owner="w", lease_expires_at=T0 + 1e9), event("r", 1)
    )
    wait = NewCompletion(pos=0, name="x", nonce="n", deadline=None, created_at=T0)
    with pytest.raises(SequenceConflictError, match=conflict("r", 4, 1)):
        await store.append(
            Append("r", (event("r", 5),), 4, fence=Fence("w", run.epoch), completions=(wait,))
        )
    assert await store.list_completions("r") == []


async def test_concurrent_settles_one_winner(store: Store) -> None:
    await _opened(store)
    results = await asyncio.gather(
        *(
            store.settle_completion(
                "r", 0, "n0nce", status=s, now=T0 + i, item=_item("r", 0, s.encode())
            )
            for i, s in enumerate(["completed", "failed", "timed_out", "completed"])
        )
    )
    assert sum(r.won for r in results) == 1
    assert len(await store.read_inbox(["r"])) == 1


async def test_prune_forgets_completions(store: Store) -> None:
    fence = await _opened(store)
    await store.append(
        Append(
            "r", (event("r", 3),), 2, fence=fence,
            update=RunUpdate(status="succeeded", finished_at=T0 + 1),
        )
    )  # fmt: skip
    assert await store.prune_runs(T0 + 100) == 1
    assert await store.list_completions("r") == []
