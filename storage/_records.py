"""Plain rows the store persists. The store knows nothing of what events mean: an event is
(run_id, seq, type tag, opaque bytes), a run row carries the columns listing and leasing need."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Literal

import msgspec

from storage._errors import (
    DefinitionConflictError,
    InvalidAppendError,
    RunNotFoundError,
    RunStatusError,
    SequenceConflictError,
)
from storage._update_records import UpdateChange

RunStatus = Literal["pending", "running", "succeeded", "partial", "failed", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "partial", "failed", "cancelled"})
ACTIVE_STATUSES: tuple[str, ...] = ("pending", "running")


class EventRecord(msgspec.Struct, frozen=True, gc=False):
    """One stored event. Untracked by the cyclic collector (gc=False): plain values only, no
    cycle possible, and a history read makes one per event."""

    run_id: str
    seq: int
    type: str
    data: bytes
    created_at: float


class SnapshotRecord(msgspec.Struct, frozen=True):
    """A run's folded state as of `seq` (durable._snapshot encodes and checks it; storage keeps
    the bytes and the checksum it is given)."""

    run_id: str
    seq: int
    fold_version: int
    data: bytes
    checksum: int
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
    # The queue the run was started in (storage._queue_ops), None for a plain run: a worker
    # that ends a queued run frees a slot of that queue and wakes the admissions.
    queue: str | None = None


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
    # Queued runs (storage._queue_ops): created unowned, claimable only once their queue admits
    # them. `ready_at` (None: created_at) puts the first claim off: a delayed start.
    queue: str | None = None
    priority: int = 0
    partition_key: str | None = None
    dedupe_key: str | None = None
    ready_at: float | None = None


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


class NewInboxItem(msgspec.Struct, frozen=True):
    """A message for a run (a signal, a cancel request, a child's completion: kind, name and
    payload are opaque to the store). With a dedupe_key, (run_id, dedupe_key) is stored at most
    once while the item is in the inbox (consuming it frees the key)."""

    run_id: str
    kind: str
    name: str
    payload: bytes
    created_at: float
    dedupe_key: str | None = None

    def stored(self, item_id: int) -> InboxItem:
        """The item as the store holds it, under the id it assigned."""
        return InboxItem(
            item_id,
            self.run_id,
            self.kind,
            self.name,
            self.payload,
            self.created_at,
            self.dedupe_key,
        )


class InboxItem(msgspec.Struct, frozen=True):
    """An item in a run's inbox. `id` is assigned by the store, increasing in arrival order."""

    id: int
    run_id: str
    kind: str
    name: str
    payload: bytes
    created_at: float
    dedupe_key: str | None = None


class NewCompletion(msgspec.Struct, frozen=True):
    """An external wait (ctx.wait_external) opened by an append, for the append's run: its
    row in durable_completions (storage._completions) is inserted in the same transaction."""

    pos: int
    name: str
    nonce: str
    deadline: float | None
    created_at: float


class RunValue(msgspec.Struct, frozen=True):
    """The latest value of one key a run set (ctx.set_event): `value` is msgpack, `seq` the
    ValueSet event's. Appended with its event (Append.values), replaced only by a newer seq."""

    run_id: str
    key: str
    value: bytes
    seq: int
    updated_at: float = 0.0


class StreamRow(msgspec.Struct, frozen=True):
    """One value (or the close marker: value None, closed True) to add to a run's stream `key`.
    `producer` names the write within the run: a second row with the same (key, producer) is
    dropped, which is what makes a retried step's writes exactly-once."""

    key: str
    producer: str
    value: bytes | None
    created_at: float
    closed: bool = False


class StreamRecord(msgspec.Struct, frozen=True):
    """A stored stream row: offsets are dense per (run, key), from 1; the close marker takes the
    offset after the last value."""

    offset: int
    value: bytes | None
    closed: bool
    created_at: float


class Append(msgspec.Struct, frozen=True):
    """Events to add to one run's log, after its event number expected_last_seq.

    In the same transaction (all or nothing with the events): `consume` deletes those items of
    this run's inbox (ids of items of other runs, or already gone, are ignored), and `send`
    delivers items to other runs (or this one) with the rules of Store.send, except that an
    item for a run that does not exist is skipped."""

    run_id: str
    events: tuple[EventRecord, ...]
    expected_last_seq: int
    fence: Fence | None = None
    update: RunUpdate | None = None
    consume: tuple[int, ...] = ()
    send: tuple[NewInboxItem, ...] = ()
    completions: tuple[NewCompletion, ...] = ()  # external waits opened (storage._completions)
    values: tuple[RunValue, ...] = ()  # upserted in the same commit (see RunValue)
    # Stream rows written by workflow code (StreamWritten/StreamClosed events), projected into
    # durable_streams in the same transaction (storage._streams_ops).
    stream: tuple[StreamRow, ...] = ()
    # Update rows of this run changed in the same transaction (storage._update_records).
    updates: tuple[UpdateChange, ...] = ()


def created_record(
    run: NewRun, first: EventRecord, history: Sequence[EventRecord] = ()
) -> RunRecord:
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
        last_seq=history[-1].seq if history else first.seq,
        owner=run.owner,
        epoch=1 if owned else 0,
        lease_expires_at=run.lease_expires_at,
        ready_at=run.created_at if run.ready_at is None else run.ready_at,
        queue=run.queue,
    )


def check_append(append: Append) -> None:
    """Refuse an append whose events don't continue the log it names, gap-free."""
    _check_continues(append.run_id, append.expected_last_seq, append.events, "append to")


def check_history(run: NewRun, first: EventRecord, history: Sequence[EventRecord]) -> None:
    """Refuse a create_run whose history doesn't continue its first event, gap-free."""
    _check_continues(run.run_id, first.seq, history, "history of new")


def check_reopen(
    run_id: str, event: EventRecord, found: tuple[str, int] | None, statuses: Collection[str]
) -> None:
    """Refuse a reopen_run, given the run's (status, last_seq) as the store found it (None: no
    such run), in the order the protocol states: misnumbered event, run, status, seq."""
    _check_continues(run_id, event.seq - 1, (event,), "reopen of")
    if found is None:
        raise RunNotFoundError(run_id)
    status, last_seq = found
    if status not in statuses:
        raise RunStatusError(run_id, status, tuple(sorted(statuses)))
    if last_seq != event.seq - 1:
        raise SequenceConflictError(run_id, event.seq - 1, last_seq)


def _check_continues(run_id: str, after: int, events: Sequence[EventRecord], what: str) -> None:
    expected = after + 1
    for event in events:
        if event.run_id != run_id or event.seq != expected:
            raise InvalidAppendError(
                f"{what} run {run_id!r} after seq {after}: event "
                f"{event.run_id!r}#{event.seq} should be {run_id!r}#{expected}"
            )
        expected += 1


class Claim(msgspec.Struct, frozen=True):
    """A run a worker now holds: its row as it stood, with the new epoch."""

    run: RunRecord
    fence: Fence


class Release(msgspec.Struct, frozen=True):
    """Give a lease back. ready_at says when the run should next be claimed (None = now);
    park=True leaves it unclaimable until something is sent to it (ready_at NULL). Giving both
    is a ValueError at construction.

    A run whose inbox is not empty is never parked nor put off: it becomes ready at its oldest
    item's created_at if that is earlier (an item that arrived while the run was leased must
    not be lost). So consume every handled item (Append.consume) before releasing."""

    run_id: str
    fence: Fence
    ready_at: float | None = None
    park: bool = False

    def __post_init__(self) -> None:
        if self.park and self.ready_at is not None:
            raise ValueError(
                f"release of run {self.run_id!r}: park=True and a ready_at are exclusive"
            )


# A heartbeat also deletes the rows of workers expired longer ago than this (crashed workers
# never remove themselves); list_workers never shows expired ones anyway.
FORGET_WORKERS_AFTER = 3600.0


class WorkerRecord(msgspec.Struct, frozen=True):
    """A live worker, as its heartbeats registered it. capabilities: (workflow, version)."""

    owner: str
    capabilities: tuple[tuple[str, str], ...]
    started_at: float
    last_seen: float
    expires_at: float


class DefinitionRecord(msgspec.Struct, frozen=True):
    """A registered workflow definition: (name, version) names one immutable content.

    fingerprint identifies the content (the registrar computes it, e.g. a hash of the
    normalized definition: the store only compares fingerprints, it never parses the source);
    format is the language of source ("json" or "yaml"); source is the text exactly as
    registered."""

    name: str
    version: str
    fingerprint: str
    format: str
    source: str
    created_at: float


def already_stored(stored: DefinitionRecord, record: DefinitionRecord) -> DefinitionRecord:
    """put_definition found `stored` under record's (name, version): the same definition is
    returned as stored; another one is refused."""
    if stored.fingerprint != record.fingerprint:
        raise DefinitionConflictError(
            record.name, record.version, stored.fingerprint, record.fingerprint
        )
    return stored


class RunQuery(msgspec.Struct, frozen=True):
    status: str | None = None
    workflow: str | None = None
    limit: int = 50
    # Keyset pagination: runs created strictly before this (created_at, run_id).
    before: tuple[float, str] | None = None


def worker_from_row(
    owner: str, capabilities: str, started_at: float, last_seen: float, expires_at: float
) -> WorkerRecord:
    """A durable_workers row as a record: the SQL backends keep capabilities as JSON."""
    caps = tuple((str(w), str(v)) for w, v in json.loads(capabilities))
    return WorkerRecord(owner, caps, started_at, last_seen, expires_at)
