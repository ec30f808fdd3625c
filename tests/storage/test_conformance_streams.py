"""Conformance of streams (durable_streams): producer dedupe, dense offsets, the fence, writes
after close, paged reads, the projection of an append, prune. Run against every backend."""

from __future__ import annotations

import pytest
from storekit import T0, append, conflict, create, event, lease_lost

from storage import (
    Append,
    Fence,
    LeaseLostError,
    RunNotFoundError,
    RunUpdate,
    SequenceConflictError,
    Store,
    StreamClosedError,
    StreamKey,
    StreamRow,
)


def row(
    producer: str, value: bytes | None = None, *, key: str = "k", closed: bool = False
) -> StreamRow:
    # A value names its producer, so a misplaced or duplicated row is visible in a diff.
    if value is None and not closed:
        value = producer.encode()
    return StreamRow(key, producer, value, T0, closed)


async def held(store: Store, run_id: str = "r1") -> Fence:
    await create(store, run_id)
    claims = await store.claim_runs("w0", limit=1, lease_ttl=30, now=T0 + 1)
    assert [c.run.run_id for c in claims] == [run_id]
    return claims[0].fence


async def values(
    store: Store, run_id: str = "r1", key: str = "k", after: int = 0
) -> list[tuple[int, bytes | None, bool]]:
    return [(r.offset, r.value, r.closed) for r in await store.read_stream(run_id, key, after)]


async def test_offsets_are_dense_from_one_and_producers_write_once(store: Store) -> None:
    fence = await held(store)
    await store.write_stream("r1", fence, [row("s2.0"), row("s2.1")])
    # A retried attempt emits its producers again from 0: the stored ones are dropped, the
    # new one lands right after them.
    await store.write_stream("r1", fence, [row("s2.0"), row("s2.1"), row("s2.2")])
    await store.write_stream("r1", fence, [row("s2.1")])
    assert await values(store) == [(1, b"s2.0", False), (2, b"s2.1", False), (3, b"s2.2", False)]
    # Keys are counted apart.
    await store.write_stream("r1", fence, [row("s2.3", key="other")])
    assert await values(store, key="other") == [(1, b"s2.3", False)]
    assert await store.stream_keys("r1") == [StreamKey("k", 3, False), StreamKey("other", 1, False)]


async def test_a_duplicate_keeps_the_first_value(store: Store) -> None:
    fence = await held(store)
    await store.write_stream("r1", fence, [row("s2.0", b"first")])
    await store.write_stream("r1", fence, [row("s2.0", b"second")])
    assert await values(store) == [(1, b"first", False)]


async def test_a_stale_fence_writes_nothing(store: Store) -> None:
    fence = await held(store)
    stale = Fence(fence.owner, fence.epoch - 1)
    who, epoch = fence.owner, fence.epoch
    with pytest.raises(LeaseLostError, match=lease_lost("r1", who, epoch - 1, who, epoch)):
        await store.write_stream("r1", stale, [row("s2.0")])
    with pytest.raises(LeaseLostError, match=lease_lost("r1", "someone", epoch, who, epoch)):
        await store.write_stream("r1", Fence("someone", fence.epoch), [row("s2.0")])
    with pytest.raises(RunNotFoundError, match=r"^no run with id 'nope'$"):
        await store.write_stream("nope", fence, [row("s2.0")])
    assert await values(store) == []
    assert await store.stream_keys("r1") == []


async def test_writing_after_close_is_refused_and_changes_nothing(store: Store) -> None:
    fence = await held(store)
    await store.write_stream("r1", fence, [row("s2.0"), row("s2.1", closed=True)])
    assert await values(store) == [(1, b"s2.0", False), (2, None, True)]
    assert await store.stream_keys("r1") == [StreamKey("k", 1, True)]
    with pytest.raises(StreamClosedError, match="stream 'k' is closed"):
        await store.write_stream("r1", fence, [row("s3.0", key="fresh"), row("s3.1")])
    # Refused whole: not even the row for the other key went in.
    assert await store.stream_keys("r1") == [StreamKey("k", 1, True)]
    # A retry repeating what its first attempt wrote, close included, is not an error.
    await store.write_stream("r1", fence, [row("s2.0"), row("s2.1", closed=True)])
    assert await values(store) == [(1, b"s2.0", False), (2, None, True)]


async def test_reads_resume_after_an_offset_and_are_paged(store: Store) -> None:
    fence = await held(store)
    await store.write_stream("r1", fence, [row(f"s2.{i}") for i in range(10)])
    assert [r.offset for r in await store.read_stream("r1", "k", 7)] == [8, 9, 10]
    assert [r.offset for r in await store.read_stream("r1", "k", 2, limit=3)] == [3, 4, 5]
    assert await store.read_stream("r1", "k", 10) == []
    assert await store.read_stream("r1", "missing") == []
    assert await store.stream_progress("r1", "s2.") == {"k": 10}
    assert await store.stream_progress("r1", "s3.") == {}


async def test_progress_counts_one_step_call(store: Store) -> None:
    fence = await held(store)
    await store.write_stream("r1", fence, [row("s1.0"), row("s1.1"), row("s12.0")])
    await store.write_stream("r1", fence, [row("s1.2", key="b"), row("s1.3", closed=True)])
    assert await store.stream_progress("r1", "s1.") == {"k": 2, "b": 1}
    assert await store.stream_progress("r1", "s12.") == {"k": 1}


async def test_an_append_projects_its_rows_with_its_events(store: Store) -> None:
    fence = await held(store)
    rows = (row("w2", b"a"), row("w3", closed=True))
    await store.append(Append("r1", (event("r1", 2), event("r1", 3)), 1, fence, stream=rows))
    assert await values(store) == [(1, b"a", False), (2, None, True)]
    # A refused append writes none of its rows.
    refused = Append("r1", (event("r1", 2),), 1, fence, stream=(row("w4", key="x"),))
    with pytest.raises(SequenceConflictError, match=conflict("r1", 1, 3)):
        await store.append(refused)
    assert await store.stream_keys("r1") == [StreamKey("k", 1, True)]


async def test_prune_deletes_a_runs_streams(store: Store) -> None:
    fence = await held(store)
    await store.write_stream("r1", fence, [row("s2.0")])
    other = await held(store, "r2")
    await store.write_stream("r2", other, [row("s2.0")])
    done = append("r1", 1, fence=fence, update=RunUpdate(status="succeeded", finished_at=T0 + 5))
    await store.append(done)
    assert await store.prune_runs(T0 + 10) == 1
    assert await store.stream_keys("r1") == []
    assert await store.stream_keys("r2") == [StreamKey("k", 1, False)]
