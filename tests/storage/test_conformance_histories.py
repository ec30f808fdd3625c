"""Conformance of the history chain of continued runs (ctx.continue_as_new();
storage._history_ops): record_history is idempotent, trims only what is older than the kept
histories, never trims on a chain it cannot see, and read_history starts at the current
history. Written once, run against every backend in conftest (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest
from storekit import T0, append, create

from storage import HistoryMark, RunUpdate, Store


def mark(generation: int, first: int, previous_first: int, keep: int = 1) -> HistoryMark:
    return HistoryMark(
        generation=generation,
        first_seq=first,
        started_at=T0 + first,
        previous_first_seq=previous_first,
        previous_last_seq=first - 1,
        previous_started_at=T0 + previous_first,
        keep=keep,
    )


async def three_histories(store: Store) -> None:
    """A run whose log holds histories 0 (seqs 1-4), 1 (5-8) and 2 (9-12)."""
    await create(store, "r")
    await store.append(append("r", 1, 11))


async def seqs(store: Store) -> list[int]:
    return [e.seq for e in await store.read_events("r")]


async def test_a_run_never_continued_has_no_chain_and_its_whole_log_as_history(
    store: Store,
) -> None:
    await create(store, "r")
    await store.append(append("r", 1, 3))
    assert await store.list_histories("r") == []
    assert [e.seq for e in await store.read_history("r")] == [1, 2, 3, 4]


async def test_the_chain_grows_and_the_events_of_older_histories_are_deleted(
    store: Store,
) -> None:
    await three_histories(store)
    await store.record_history("r", mark(1, 5, 1))
    assert await seqs(store) == list(range(1, 13))  # keep=1: history 0 is the one before
    assert [e.seq for e in await store.read_history("r")] == list(range(5, 13))
    await store.record_history("r", mark(2, 9, 5))
    assert await seqs(store) == list(range(5, 13))  # history 0's events are gone
    assert [e.seq for e in await store.read_history("r")] == [9, 10, 11, 12]
    chain = await store.list_histories("r")
    got = [(h.generation, h.first_seq, h.last_seq, h.ended_at, h.retained) for h in chain]
    assert got == [
        (0, 1, 4, T0 + 5, False),
        (1, 5, 8, T0 + 9, True),
        (2, 9, None, None, True),
    ]
    assert chain[0].started_at == T0 + 1 and chain[2].started_at == T0 + 9


async def test_recording_twice_changes_nothing(store: Store) -> None:
    await three_histories(store)
    await store.record_history("r", mark(1, 5, 1))
    await store.record_history("r", mark(2, 9, 5))
    before = (await store.list_histories("r"), await seqs(store))
    await store.record_history("r", mark(2, 9, 5))
    await store.record_history("r", mark(1, 5, 1))  # a late, older one: no change either
    assert (await store.list_histories("r"), await seqs(store)) == before


async def test_a_chain_missing_a_history_deletes_nothing(store: Store) -> None:
    """A crash before a history's row was written: the oldest kept history's start is not in
    the chain, so nothing is trimmed (deleting on a guess could lose kept events)."""
    await three_histories(store)
    await store.append(append("r", 12, 4))  # history 3: seqs 13-16
    await store.record_history("r", mark(3, 13, 9, keep=2))  # needs generation 1's row
    assert await seqs(store) == list(range(1, 17))
    assert [h.generation for h in await store.list_histories("r")] == [2, 3]
    await store.record_history("r", mark(2, 9, 5))  # the late row: now it can trim
    assert await seqs(store) == list(range(5, 17))
    assert [h.generation for h in await store.list_histories("r")] == [1, 2, 3]


async def test_keep_zero_keeps_only_the_current_history(store: Store) -> None:
    await three_histories(store)
    await store.record_history("r", mark(1, 5, 1, keep=0))
    assert await seqs(store) == list(range(5, 13))


async def test_prune_deletes_the_chain(store: Store) -> None:
    await three_histories(store)
    await store.record_history("r", mark(1, 5, 1))
    await store.append(append("r", 12, update=RunUpdate(status="succeeded", finished_at=T0 + 50)))
    assert await store.prune_runs(T0 + 100) == 1
    assert await store.list_histories("r") == []


@pytest.mark.parametrize("bad", [mark(0, 5, 1), mark(1, 5, 6), mark(1, 5, 1, keep=-1)])
async def test_a_bad_mark_is_refused(store: Store, bad: HistoryMark) -> None:
    await three_histories(store)
    with pytest.raises(ValueError, match="bad history mark"):
        await store.record_history("r", bad)
    assert await store.list_histories("r") == []
