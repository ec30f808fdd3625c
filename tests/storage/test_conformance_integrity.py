"""Every event is stored with a checksum of what identifies and carries it (run id, seq, type tag,
payload bytes), written by every path that writes events and verified by every read: a payload
changed behind the store's back is refused with EventChecksumError, on every backend."""

from __future__ import annotations

import pytest
from storekit import T0, append, event, events, new_run, tamper

from storage import EventChecksumError, EventRecord, RunUpdate, StorageError, Store


async def write_by_every_path(store: Store, run_id: str) -> list[EventRecord]:
    """Seq 1 by create_run's first event, 2-3 by its history, 4-5 by an append, 6 by a reopen."""
    _, created = await store.create_run(
        new_run(run_id), event(run_id, 1, "Started"), events(run_id, 2, 2)
    )
    assert created
    failed = RunUpdate(status="failed", finished_at=T0 + 9)
    await store.append(append(run_id, 3, 2, update=failed))
    await store.reopen_run(run_id, event(run_id, 6, "Retried"), statuses={"failed"}, now=T0 + 10)
    written = await store.read_events(run_id)
    assert [e.seq for e in written] == [1, 2, 3, 4, 5, 6]
    return written


async def test_a_changed_payload_fails_every_read_that_includes_it(store: Store) -> None:
    intact = await write_by_every_path(store, "r")
    await write_by_every_path(store, "other")
    for seq in range(1, 7):
        await tamper(store, "r", seq, data=b"changed")
        for after in range(seq):
            damaged = rf"^run 'r': event #{seq} \(\w+\) in .* is damaged: its type tag or"
            with pytest.raises(EventChecksumError, match=damaged) as caught:
                await store.read_events("r", after_seq=after)
            assert (caught.value.run_id, caught.value.seq) == ("r", seq)
        message = str(caught.value)
        assert "'r'" in message and f"#{seq}" in message and "checksum" in message
        assert "backup" in message  # what to do about it
        # Reads that do not include the damaged event, and other runs, are unaffected.
        assert await store.read_events("r", after_seq=seq) == intact[seq:]
        assert len(await store.read_events("other")) == 6
        # The original bytes match their checksum again.
        await tamper(store, "r", seq, data=intact[seq - 1].data)
    assert await store.read_events("r") == intact


async def test_a_changed_type_tag_is_refused(store: Store) -> None:
    await write_by_every_path(store, "r")
    await tamper(store, "r", 4, type="RunCompleted")
    with pytest.raises(
        EventChecksumError, match=r"^run 'r': event #4 \(RunCompleted\) in "
    ) as caught:
        await store.read_events("r")
    assert caught.value.seq == 4
    assert isinstance(caught.value, StorageError)


async def test_payloads_swapped_between_events_are_refused(store: Store) -> None:
    # Each payload is intact on its own: the checksum also covers where it belongs (the seq).
    intact = await write_by_every_path(store, "r")
    await tamper(store, "r", 2, data=intact[2].data)
    await tamper(store, "r", 3, data=intact[1].data)
    with pytest.raises(
        EventChecksumError, match=r"^run 'r': event #2 \(E\) in .* is damaged"
    ) as caught:
        await store.read_events("r")
    assert caught.value.seq == 2


async def test_unusual_payloads_round_trip_without_false_alarms(store: Store) -> None:
    run_id = "rün-\u2603"
    odd = [
        EventRecord(run_id, 1, "Started", b"", T0),
        EventRecord(run_id, 2, "T\u00e4g", b"\x00" * 7 + b"\xff\xfe", T0 + 1),
        EventRecord(run_id, 3, "E", bytes(range(256)) * 4096, T0 + 2),  # 1 MiB
    ]
    _, created = await store.create_run(new_run(run_id), odd[0], odd[1:])
    assert created
    assert await store.read_events(run_id) == odd
