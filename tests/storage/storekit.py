"""Small builders for store records, shared by the storage tests (not a test module)."""

from __future__ import annotations

from storage import (
    Append,
    EventRecord,
    Fence,
    NewRun,
    RunRecord,
    RunUpdate,
    Store,
)

# Timestamps are explicit everywhere (stores never read the clock), so tests use round numbers.
T0 = 1_000.0


def event(run_id: str, seq: int, type: str = "E", *, at: float | None = None) -> EventRecord:
    """An event whose data names its run and seq, so a misplaced event is visible in a diff."""
    return EventRecord(
        run_id=run_id,
        seq=seq,
        type=type,
        data=f"{run_id}#{seq}".encode(),
        created_at=T0 + seq if at is None else at,
    )


def events(run_id: str, first_seq: int, count: int, type: str = "E") -> tuple[EventRecord, ...]:
    return tuple(event(run_id, s, type) for s in range(first_seq, first_seq + count))


def new_run(
    run_id: str,
    *,
    workflow: str = "wf",
    version: str = "v1",
    created_at: float = T0,
    owner: str | None = None,
    lease_expires_at: float | None = None,
    input: bytes = b"in",
) -> NewRun:
    return NewRun(
        run_id=run_id,
        workflow=workflow,
        version=version,
        input=input,
        created_at=created_at,
        owner=owner,
        lease_expires_at=lease_expires_at,
    )


async def create(
    store: Store,
    run_id: str,
    *,
    workflow: str = "wf",
    version: str = "v1",
    created_at: float = T0,
    owner: str | None = None,
    lease_expires_at: float | None = None,
) -> RunRecord:
    """Create a run (with its first event at seq 1) that must be new."""
    run = new_run(
        run_id,
        workflow=workflow,
        version=version,
        created_at=created_at,
        owner=owner,
        lease_expires_at=lease_expires_at,
    )
    record, created = await store.create_run(run, event(run_id, 1, "Started", at=created_at))
    assert created
    return record


def append(
    run_id: str,
    expected: int,
    count: int = 1,
    *,
    fence: Fence | None = None,
    update: RunUpdate | None = None,
    type: str = "E",
) -> Append:
    """The append that adds `count` events right after seq `expected`."""
    return Append(run_id, events(run_id, expected + 1, count, type), expected, fence, update)


async def must_get(store: Store, run_id: str) -> RunRecord:
    run = await store.get_run(run_id)
    assert run is not None, f"run {run_id!r} vanished"
    return run
