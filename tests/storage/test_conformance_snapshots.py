"""Store.put_snapshot / get_snapshot (durable_snapshots, schema 7), on every backend: the bytes
and checksum come back as put; a newer seq replaces, an older one does not; nothing is written
for a run that does not exist or whose log does not reach the seq; prune deletes them."""

from __future__ import annotations

from storekit import T0, append, create, must_get

from storage import RunUpdate, SnapshotRecord, Store


def snap(run_id: str, seq: int, data: bytes = b"state", checksum: int = 7) -> SnapshotRecord:
    return SnapshotRecord(run_id, seq, 1, data + str(seq).encode(), checksum, T0 + seq)


async def test_put_then_get_gives_it_back_as_put(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1, 9))
    assert await store.get_snapshot("r") is None
    await store.put_snapshot(snap("r", 5, b"\x00\xffbytes", 2**32 - 1))
    assert await store.get_snapshot("r") == snap("r", 5, b"\x00\xffbytes", 2**32 - 1)
    assert await store.get_snapshot("other") is None


async def test_only_a_newer_seq_replaces_it(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1, 9))
    await store.put_snapshot(snap("r", 5))
    await store.put_snapshot(snap("r", 3))  # older: a late write of a slower task
    assert await store.get_snapshot("r") == snap("r", 5)
    await store.put_snapshot(snap("r", 5, b"again"))  # the same seq: the first one stays
    assert await store.get_snapshot("r") == snap("r", 5)
    await store.put_snapshot(snap("r", 10))
    assert await store.get_snapshot("r") == snap("r", 10)


async def test_nothing_is_written_beyond_the_log_or_for_a_missing_run(store: Store) -> None:
    await create(store, "r")
    await store.append(append("r", 1, 2))  # last seq 3
    await store.put_snapshot(snap("r", 4))
    assert await store.get_snapshot("r") is None
    await store.put_snapshot(snap("gone", 1))
    assert await store.get_snapshot("gone") is None
    await store.put_snapshot(snap("r", 3))
    assert await store.get_snapshot("r") == snap("r", 3)


async def test_prune_deletes_the_runs_snapshot(store: Store) -> None:
    await create(store, "old")
    await create(store, "kept")
    done = RunUpdate(status="succeeded", finished_at=T0 + 1)
    await store.append(append("old", 1, 2, update=done))
    await store.append(append("kept", 1, 2))
    await store.put_snapshot(snap("old", 3))
    await store.put_snapshot(snap("kept", 3))
    assert await store.prune_runs(T0 + 100) == 1
    assert await store.get_snapshot("old") is None
    assert await store.get_snapshot("kept") == snap("kept", 3)
    assert (await must_get(store, "kept")).last_seq == 3
    # A write after the prune (a slow task) leaves no orphan row behind.
    await store.put_snapshot(snap("old", 3))
    assert await store.get_snapshot("old") is None
