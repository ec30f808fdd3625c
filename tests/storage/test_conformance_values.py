"""Conformance of the values table (ctx.set_event's projection, Append.values): written once,
run against every backend in conftest (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from storekit import T0, conflict, create, event, must_get

from storage import Append, RunUpdate, RunValue, SequenceConflictError, Store


def valued(run_id: str, expected: int, *pairs: tuple[str, bytes]) -> Append:
    """One event per pair, each setting its key at the event's seq."""
    evs = tuple(event(run_id, expected + 1 + i, "ValueSet") for i in range(len(pairs)))
    values = tuple(
        RunValue(run_id, key, value, e.seq, e.created_at)
        for (key, value), e in zip(pairs, evs, strict=True)
    )
    return Append(run_id, evs, expected, values=values)


async def test_a_value_is_written_with_its_event_and_read_back(store: Store) -> None:
    await create(store, "r")
    assert await store.get_value("r", "k") is None
    await store.append(valued("r", 1, ("k", b"\x01"), ("other", b"\x02")))
    found = await store.get_value("r", "k")
    assert found == RunValue("r", "k", b"\x01", 2, T0 + 2)
    assert [(v.key, v.value, v.seq) for v in await store.list_values("r")] == [
        ("k", b"\x01", 2),
        ("other", b"\x02", 3),
    ]
    assert await store.list_values("nobody") == []
    assert await store.get_value("nobody", "k") is None


async def test_a_newer_seq_replaces_an_older_one_never_the_reverse(store: Store) -> None:
    await create(store, "r")
    await store.append(valued("r", 1, ("k", b"old"), ("k", b"new")))
    assert (await store.get_value("r", "k")) == RunValue("r", "k", b"new", 3, T0 + 3)
    # An append carrying an older seq for the key (a tool replaying a copied log) is ignored.
    stale = Append("r", (event("r", 4, "E"),), 3, values=(RunValue("r", "k", b"stale", 2, T0),))
    await store.append(stale)
    assert (await store.get_value("r", "k")).value == b"new"  # type: ignore[union-attr]
    await store.append(valued("r", 4, ("k", b"newest")))
    assert (await store.get_value("r", "k")).seq == 5  # type: ignore[union-attr]


async def test_a_refused_append_writes_no_value(store: Store) -> None:
    await create(store, "r")
    with pytest.raises(SequenceConflictError, match=conflict("r", 7, 1)):
        await store.append(valued("r", 7, ("k", b"x")))
    assert await store.get_value("r", "k") is None
    assert len(await store.read_events("r")) == 1


async def test_values_of_runs_appended_in_one_batch_stay_with_their_runs(store: Store) -> None:
    ids = [f"r{i}" for i in range(6)]
    for run_id in ids:
        await create(store, run_id)
    # Concurrent appends: the PostgreSQL writer groups them into one transaction.
    await asyncio.gather(*(store.append(valued(r, 1, ("k", r.encode()))) for r in ids))
    for run_id in ids:
        assert (await store.get_value(run_id, "k")).value == run_id.encode()  # type: ignore[union-attr]


async def test_prune_deletes_a_runs_values(store: Store) -> None:
    await create(store, "old")
    await create(store, "live")
    await store.append(valued("live", 1, ("k", b"keep")))
    done = RunUpdate(status="succeeded", result=b"r", finished_at=T0 + 5)
    app = valued("old", 1, ("k", b"gone"))
    await store.append(Append("old", app.events, 1, update=done, values=app.values))
    assert (await must_get(store, "old")).status == "succeeded"
    assert await store.prune_runs(T0 + 100) == 1
    assert await store.get_value("old", "k") is None
    assert await store.list_values("old") == []
    assert (await store.get_value("live", "k")).value == b"keep"  # type: ignore[union-attr]
