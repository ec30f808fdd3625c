"""Small builders for store records, shared by the storage tests (not a test module)."""

from __future__ import annotations

import contextlib
import re
import sqlite3

import msgspec

from storage import (
    Append,
    EventRecord,
    Fence,
    MemoryStore,
    NewRun,
    PostgresStore,
    RunRecord,
    RunUpdate,
    SQLiteStore,
    Store,
)

# Timestamps are explicit everywhere (stores never read the clock), so tests use round numbers.
T0 = 1_000.0

# What every backend says when used unopened or after close() (the store's name varies).
CLOSED = r"store .*is not open$"


def conflict(run_id: str, expected: int, actual: int) -> str:
    """The message of the SequenceConflictError every backend raises, as a pattern."""
    return re.escape(
        f"run {run_id!r}: append expected last event seq {expected}, but the log is at {actual}"
    )


def lease_lost(run_id: str, owner: str, epoch: int, holder: str | None, held_epoch: int) -> str:
    """The message of the LeaseLostError for a write under (owner, epoch), as a pattern."""
    return re.escape(
        f"run {run_id!r}: lease epoch {epoch} of worker {owner!r} is stale (now held by "
        f"{holder!r} at epoch {held_epoch}); write rejected"
    )


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


async def tamper(
    store: Store, run_id: str, seq: int, *, data: bytes | None = None, type: str | None = None
) -> None:
    """Change a stored event's payload or type tag behind the store's back, as damage or a
    hand edit of the database would (each backend's rows, reached through its own handle)."""
    if isinstance(store, MemoryStore):
        log = store._events[run_id]
        i = next(i for i, (e, _) in enumerate(log) if e.seq == seq)
        old, checksum = log[i]
        changed = msgspec.structs.replace(
            old, data=old.data if data is None else data, type=old.type if type is None else type
        )
        log[i] = (changed, checksum)
    elif isinstance(store, SQLiteStore):
        with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as conn:
            updated = conn.execute(
                "UPDATE durable_events SET data = coalesce(?, data), type = coalesce(?, type) "
                "WHERE run_id = ? AND seq = ?",
                (data, type, run_id, seq),
            ).rowcount
        assert updated == 1
    elif isinstance(store, PostgresStore):
        status = await store._p().execute(
            "UPDATE durable_events SET data = coalesce($1, data), type = coalesce($2, type) "
            "WHERE run_id = $3 AND seq = $4",
            data,
            type,
            run_id,
            seq,
        )
        assert status == "UPDATE 1"
    else:
        raise TypeError(f"no way to tamper with {store!r}")


# The tables schema version 7 added (issue 17): dropped, with the version set back to 6, they
# make a database as the previous release left it (the migration tests).
def version_6_statements(schema: str | None = None) -> list[str]:
    from storage._schema import MIGRATION_7_TABLES

    prefix = f'"{schema}".' if schema else ""
    drops = [f"DROP TABLE {prefix}{table.name}" for table in MIGRATION_7_TABLES]
    return [*drops, f"UPDATE {prefix}durable_schema SET version = 6"]
