"""Plain rows the store persists. The store knows nothing of what events mean: an event is
(run_id, seq, type tag, opaque bytes), a run row carries the columns listing and leasing need."""

from __future__ import annotations

from typing import Literal

import msgspec

from storage._errors import InvalidAppendError

RunStatus = Literal["pending", "running", "succeeded", "partial", "failed", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "partial", "failed", "cancelled"})
ACTIVE_STATUSES: tuple[str, ...] = ("pending", "running")


class EventRecord(msgspec.Struct, frozen=True):
    run_id: str
    seq: int
    type: str
    data: bytes
    created_at: float


class RunRecord(msgspec.Struct, frozen=True):
    run_id: str
    workflow: str
    version: str
    status: str
    input: bytes
    result: bytes | None
    error: bytes | None
    parent_run_id: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    last_seq: int
    owner: str | None
    epoch: int
    lease_expires_at: float | None
    ready_at: float | None


class NewRun(msgspec.Struct, frozen=True):
    """A run to create. With an owner the creator holds the lease from the first instant, so it
    can execute the run without a claim round trip."""

    run_id: str
    workflow: str
    version: str
    input: bytes
    created_at: float
    parent_run_id: str | None = None
    owner: str | None = None
    lease_expires_at: float | None = None


class Fence(msgspec.Struct, frozen=True):
    """The lease a writer holds; an append carrying a fence is rejected unless it still matches."""

    owner: str
    epoch: int


class RunUpdate(msgspec.Struct, frozen=True):
    """Columns of the run row an append changes in the same transaction. None = unchanged."""

    status: str | None = None
    result: bytes | None = None
    error: bytes | None = None
    finished_at: float | None = None


class Append(msgspec.Struct, frozen=True):
    """Events to add to one run's log, after its event number expected_last_seq."""

    run_id: str
    events: tuple[EventRecord, ...]
    expected_last_seq: int
    fence: Fence | None = None
    update: RunUpdate | None = None


def created_record(run: NewRun, first: EventRecord) -> RunRecord:
    """The row of a run just created, as every backend inserts and returns it. A run created
    with an owner is already being executed by its creator: running, at lease epoch 1."""
    owned = run.owner is not None
    return RunRecord(
        run_id=run.run_id,
        workflow=run.workflow,
        version=run.version,
        status="running" if owned else "pending",
        input=run.input,
        result=None,
        error=None,
        parent_run_id=run.parent_run_id,
        created_at=run.created_at,
        updated_at=run.created_at,
        finished_at=None,
        last_seq=first.seq,
        owner=run.owner,
        epoch=1 if owned else 0,
        lease_expires_at=run.lease_expires_at,
        ready_at=run.created_at,
    )


def check_append(append: Append) -> None:
    """Refuse an append whose events don't continue the log it names, gap-free."""
    expected = append.expected_last_seq + 1
    for event in append.events:
        if event.run_id != append.run_id or event.seq != expected:
            raise InvalidAppendError(
                f"append to run {append.run_id!r} after seq {append.expected_last_seq}: event "
                f"{event.run_id!r}#{event.seq} should be {append.run_id!r}#{expected}"
            )
        expected += 1


class Claim(msgspec.Struct, frozen=True):
    """A run a worker now holds: its row as it stood, with the new epoch."""

    run: RunRecord
    fence: Fence


class Release(msgspec.Struct, frozen=True):
    """Give a lease back. ready_at says when the run should next be claimed (None = now)."""

    run_id: str
    fence: Fence
    ready_at: float | None = None


class RunQuery(msgspec.Struct, frozen=True):
    status: str | None = None
    workflow: str | None = None
    limit: int = 50
    # Keyset pagination: runs created strictly before this (created_at, run_id).
    before: tuple[float, str] | None = None
