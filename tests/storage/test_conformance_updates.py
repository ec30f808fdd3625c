"""Update request rows (storage._updates_ops), on every backend: one row and one inbox item per
(run, update id) ever; update-with-start creates the run in the same transaction; appends move
open rows only; a rejection consumes its item with the row; an ended run refuses new ones;
prune forgets them with their run."""

from __future__ import annotations

import pytest
from storekit import T0, append, conflict, event, new_run

from storage import (
    UPDATE_ITEM_KIND,
    Append,
    NewUpdate,
    RunNotFoundError,
    RunStatusError,
    RunUpdate,
    SequenceConflictError,
    Store,
    UpdateChange,
)

pytestmark = pytest.mark.asyncio


def req(run_id: str, update_id: str, payload: bytes = b"p") -> NewUpdate:
    return NewUpdate(run_id, update_id, "add", payload, T0 + 5)


async def test_a_request_is_stored_once_with_its_inbox_item(store: Store) -> None:
    await store.create_run(new_run("r"), event("r", 1))
    first = await store.request_update(req("r", "u1", b"args"))
    again = await store.request_update(req("r", "u1", b"other"))
    assert first.created and not again.created
    assert first.update is not None and again.update is not None
    assert again.update.payload == b"args" and again.update.status == "requested"
    inbox = await store.read_inbox(["r"])
    assert [(i.kind, i.name, i.payload) for i in inbox] == [(UPDATE_ITEM_KIND, "u1", b"args")]
    run = await store.get_run("r")
    assert run is not None and run.ready_at is not None  # woken as send() wakes it
    with pytest.raises(RunNotFoundError, match=r"^no run with id 'missing'$"):
        await store.request_update(req("missing", "u1"))


async def test_appends_move_open_rows_and_never_an_outcome(store: Store) -> None:
    await store.create_run(new_run("r"), event("r", 1))
    await store.request_update(req("r", "u1"))
    (item,) = await store.read_inbox(["r"])
    accept = UpdateChange("u1", "accepted", at=T0 + 6)
    await store.append(Append("r", (event("r", 2),), 1, consume=(item.id,), updates=(accept,)))
    row = await store.get_update("r", "u1")
    assert row is not None and row.status == "accepted" and row.updated_at == T0 + 6
    assert await store.read_inbox(["r"]) == []
    done = UpdateChange("u1", "completed", result=b"ok", at=T0 + 7)
    await store.append(Append("r", (event("r", 3),), 2, updates=(done,)))
    late = UpdateChange("u1", "failed", error=b"e", at=T0 + 8)
    await store.append(Append("r", (event("r", 4),), 3, updates=(late,)))
    row = await store.get_update("r", "u1")
    assert row is not None and (row.status, row.result, row.error) == ("completed", b"ok", None)


async def test_a_refused_append_changes_no_row(store: Store) -> None:
    await store.create_run(new_run("r"), event("r", 1))
    await store.request_update(req("r", "u1"))
    accept = UpdateChange("u1", "accepted", at=T0 + 6)
    with pytest.raises(SequenceConflictError, match=conflict("r", 4, 1)):
        await store.append(Append("r", (event("r", 5),), 4, updates=(accept,)))
    row = await store.get_update("r", "u1")
    assert row is not None and row.status == "requested"


async def test_a_rejection_consumes_its_item_and_nothing_else(store: Store) -> None:
    await store.create_run(new_run("r"), event("r", 1))
    await store.request_update(req("r", "u1"))
    await store.request_update(req("r", "u2"))
    items = {i.name: i for i in await store.read_inbox(["r"])}
    change = UpdateChange("u1", "rejected", error=b"why", at=T0 + 6)
    await store.reject_update("r", change, items["u1"].id)
    assert [i.name for i in await store.read_inbox(["r"])] == ["u2"]
    row = await store.get_update("r", "u1")
    assert row is not None and (row.status, row.error) == ("rejected", b"why")
    assert (await store.get_run("r")).last_seq == 1  # type: ignore[union-attr]
    assert [u.update_id for u in await store.list_updates("r")] == ["u1", "u2"]


async def test_update_with_start_creates_the_run_once(store: Store) -> None:
    first = await store.request_update(req("w", "u1"), start=(new_run("w"), event("w", 1)))
    second = await store.request_update(req("w", "u2"), start=(new_run("w"), event("w", 1)))
    assert first.run_created and first.created
    assert not second.run_created and second.created
    assert [i.name for i in await store.read_inbox(["w"])] == ["u1", "u2"]
    other = new_run("w", workflow="other")
    clash = await store.request_update(req("w", "u3"), start=(other, event("w", 1)))
    assert clash.update is None and clash.run.workflow == "wf"
    assert await store.get_update("w", "u3") is None


async def test_an_ended_run_refuses_new_updates_but_answers_old_ones(store: Store) -> None:
    await store.create_run(new_run("r"), event("r", 1))
    await store.request_update(req("r", "u1"))
    end = RunUpdate(status="succeeded", finished_at=T0 + 9)
    await store.append(append("r", 1, 1, update=end))
    with pytest.raises(
        RunStatusError, match=r"^run 'r' is succeeded, not .*: it cannot be sent an update$"
    ):
        await store.request_update(req("r", "u2"))
    old = await store.request_update(req("r", "u1"))
    assert not old.created and old.update is not None and old.update.status == "requested"
    assert await store.prune_runs(T0 + 100) == 1
    assert await store.get_update("r", "u1") is None
