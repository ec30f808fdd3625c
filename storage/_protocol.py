"""The store protocol: everything the engine asks of a database.

Writes are *enqueued* synchronously and return a future that resolves once the write is durable.
That lets the engine issue a write-behind append (a StepStarted it need not wait for) and lets a
backend batch the pending writes of every run into one transaction (group commit). Writes for one
run are applied in the order they were enqueued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence
from typing import Protocol, runtime_checkable

from storage._completions import CompletionStore
from storage._history_ops import HistoryMark, HistoryRecord
from storage._queue_ops import QueuedRun, QueueRecord, QueueStats, RunQueue
from storage._records import (
    Append,
    Claim,
    DefinitionRecord,
    EventRecord,
    InboxItem,
    NewInboxItem,
    NewRun,
    Release,
    RunQuery,
    RunRecord,
    RunValue,
    SnapshotRecord,
    WorkerRecord,
)
from storage._schedule_ops import ScheduleRecord
from storage._streams_protocol import StreamStore
from storage._updates_protocol import UpdateStore


class Store(CompletionStore, StreamStore, UpdateStore, Protocol):
    """A durable home for run rows and their event logs."""

    @property
    def url(self) -> str:
        """The URL the store was opened with, with any password masked."""
        ...

    async def open(self) -> None:
        """Connect, create or migrate the schema. Raises DatabaseOpenError with the cause."""
        ...

    async def close(self) -> None:
        """Flush pending writes and disconnect."""
        ...

    def create_run(
        self, run: NewRun, first_event: EventRecord, history: Sequence[EventRecord] = ()
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        """Insert a run row, its first event and the events of `history` atomically. If a run
        with that id exists, nothing is written and the future gives (existing row, False);
        otherwise (new row, True), whose last_seq is the last event's seq.

        `history` continues first_event's log (run.run_id, seq first_event.seq+1, +2, ...): a
        forked run is created with a copy of another run's log, so no worker can ever claim it
        with part of it. A history that does not continue gap-free fails the future with
        InvalidAppendError, having written nothing (whether or not the run exists)."""
        ...

    def append(self, append: Append) -> asyncio.Future[None]:
        """Add events after expected_last_seq, check the fence, apply the run update: all or
        nothing. Fails with SequenceConflictError, LeaseLostError or RunNotFoundError."""
        ...

    async def reopen_run(
        self, run_id: str, event: EventRecord, *, statuses: Collection[str], now: float
    ) -> RunRecord:
        """Resume a run in place (a failed run retried): append `event` and make the run
        unfinished and claimable, atomically. Returns the updated row: status 'pending',
        result, error, finished_at, owner and lease_expires_at None, ready_at and updated_at
        `now`, last_seq event.seq; epoch unchanged (the next claim increments it). Its inbox is
        untouched. On PostgreSQL, idle workers are notified.

        Raises, having written nothing: InvalidAppendError if the event is not for this run,
        RunNotFoundError if the run does not exist, RunStatusError if its status is not one of
        `statuses`, SequenceConflictError if its last_seq is not event.seq - 1."""
        ...

    async def read_events(self, run_id: str, after_seq: int = 0) -> list[EventRecord]:
        """The run's events with seq > after_seq, in order, in one query."""
        ...

    async def read_history(self, run_id: str) -> list[EventRecord]:
        """The events of the run's current history (ctx.continue_as_new(): from the start of
        the newest history in its chain; all of them for a run never continued)."""
        ...

    async def record_history(self, run_id: str, mark: HistoryMark) -> None:
        """A continued run's history began: its chain gets the row of the history and the
        closing of the one before, and the events of histories older than `mark.keep` before
        the current one are deleted. Idempotent (storage._history_ops)."""
        ...

    async def list_histories(self, run_id: str) -> list[HistoryRecord]:
        """The chain of the run's histories, oldest first (empty: never continued)."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        """Newest first."""
        ...

    async def claim_runs(
        self,
        owner: str,
        *,
        limit: int,
        lease_ttl: float,
        now: float,
        eligible: Sequence[tuple[str, str]] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[Claim]:
        """Lease up to `limit` unfinished runs that nobody holds (or whose lease expired) and
        whose ready_at has come, restricted to (workflow, version) pairs in `eligible` and
        leaving out the run ids in `exclude` (those the claimer is still executing, whose
        lease a late heartbeat let lapse). Each claim increments the run's epoch, fencing out
        the previous holder.

        A queued run (NewRun.queue) is claimed only once admitted: the slots the ordinary
        claim leaves are offered to the queues, each admitting waiting runs within its limits
        (storage._queue_ops); an admitted run stays admitted, and counted, until it ends."""
        ...

    async def renew_leases(
        self,
        owner: str,
        *,
        lease_ttl: float,
        now: float,
        run_ids: Sequence[str] | None = None,
    ) -> int:
        """Extend the leases `owner` holds on unfinished runs: those in `run_ids` (the runs it
        is executing), or all of them if None. Returns how many were extended."""
        ...

    async def release_leases(self, releases: Sequence[Release]) -> None:
        """Give leases back (only where the fence still matches). An unfinished run becomes
        ready at the release's ready_at (None: at once), or never on its own if park=True; but
        never later than the oldest item in its inbox (see Release)."""
        ...

    # ------------------------------------------------------------------------ inbox

    async def send(self, item: NewInboxItem) -> InboxItem:
        """Put an item in a run's inbox and, in the same transaction, wake the run: if it is
        unfinished, its ready_at becomes item.created_at unless it is already earlier (a
        parked or sleeping run is claimable now). If the inbox already holds an item with the
        same (run_id, dedupe_key), nothing is inserted and that item is returned (the run is
        still woken). Durable when it returns; on PostgreSQL, idle workers are notified.
        Raises RunNotFoundError if the run does not exist."""
        ...

    async def read_inbox(self, run_ids: Sequence[str]) -> list[InboxItem]:
        """Every item in the inboxes of these runs, ordered by id, in one query. Items leave
        the inbox when an append consumes them (Append.consume) or their run is pruned."""
        ...

    async def get_value(self, run_id: str, key: str) -> RunValue | None:
        """The latest value of `key` the run set with ctx.set_event (Append.values); None
        if it never set it, or there is no such run. Pruned with its run."""
        ...

    async def list_values(self, run_id: str) -> list[RunValue]:
        """Every key the run set, with its latest value, ordered by key."""
        ...

    # ------------------------------------------------------------------------ retention

    async def prune_runs(self, finished_before: float, *, limit: int = 1000) -> int:
        """Delete up to `limit` finished runs (succeeded, partial, failed, cancelled) with
        finished_at < finished_before, oldest finished first, with their events and inbox
        items. A run whose parent run exists and is unfinished (a reopened one included) is
        kept (the parent still needs it). Returns how many runs were deleted."""
        ...

    # ------------------------------------------------------------------------ snapshots

    async def put_snapshot(self, record: SnapshotRecord) -> None:
        """Store a run's folded state as of record.seq (durable._snapshot), replacing its
        stored one if record.seq is higher; written only if the run exists and its last_seq
        is at least record.seq (else nothing is written). Outside any append."""
        ...

    async def get_snapshot(self, run_id: str) -> SnapshotRecord | None:
        """The run's stored snapshot, as put (checked by the caller), or None."""
        ...

    # ------------------------------------------------------------------------ workers

    async def heartbeat_worker(
        self, owner: str, capabilities: Sequence[tuple[str, str]], *, now: float, ttl: float
    ) -> None:
        """Register a live worker or refresh it: capabilities are the (workflow, version)
        pairs it can execute. A new worker gets started_at=now; every heartbeat sets
        last_seen=now and expires_at=now+ttl."""
        ...

    async def list_workers(self, *, now: float) -> list[WorkerRecord]:
        """The workers whose registration has not expired (expires_at > now), by owner."""
        ...

    async def remove_worker(self, owner: str) -> None:
        """Forget a worker (it is shutting down). Unknown owners are ignored."""
        ...

    # ------------------------------------------------------------------------ definitions

    async def put_definition(self, record: DefinitionRecord) -> tuple[DefinitionRecord, bool]:
        """Store a workflow definition. Definitions are immutable: (name, version) names one
        content, told apart by its fingerprint. If no definition has record's (name, version),
        it is inserted: (record, True). If one does with the same fingerprint, nothing is
        written: (the stored record, False), its created_at, format and source as first put.
        If one does with another fingerprint, DefinitionConflictError, nothing written.

        Atomic, also between processes: of several puts of one (name, version) at once exactly
        one inserts; each other gets (stored, False) or DefinitionConflictError. Durable when
        it returns."""
        ...

    async def get_definition(self, name: str, version: str) -> DefinitionRecord | None:
        """The definition stored under (name, version), or None."""
        ...

    async def list_definitions(self, name: str | None = None) -> list[DefinitionRecord]:
        """Every stored definition, or every version of `name`; ordered by name, then
        created_at, then version."""
        ...

    async def count_definitions(self) -> int:
        """How many definitions are stored: one cheap query, for processes that poll to know
        when to reload (definitions are never deleted, so a change in count is a new one)."""
        ...

    # ------------------------------------------------------------------------ schedules

    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        """Declare a schedule: insert `record`, or update the spec (workflow, cron, timezone,
        policies) of the schedule of that name, keeping its state (paused, last tick...). A
        changed cron or timezone restarts its ticks at record.next_tick. Returns the row."""
        ...

    async def get_schedule(self, name: str) -> ScheduleRecord | None: ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by name."""
        ...

    async def update_schedule(self, record: ScheduleRecord, expected_revision: int) -> bool:
        """Write record's state (paused, next_tick, last_tick, last_run_id, holding,
        updated_at) if the row's revision is still `expected_revision`, incrementing it;
        False, having written nothing, if it changed (another process wrote first) or the row
        is gone. Atomic between processes: of two updates from one revision, one wins."""
        ...

    # ------------------------------------------------------------------------ queues

    async def put_queue(self, record: QueueRecord) -> None:
        """Declare a queue: insert it or replace its limits. Claims admit its runs (a run of
        a queue nobody declared waits) within the limits stored here."""
        ...

    async def get_queue(self, name: str) -> QueueRecord | None: ...

    async def list_queues(self) -> list[QueueRecord]:
        """Every declared queue, by name."""
        ...

    async def queue_stats(self, name: str, *, now: float) -> QueueStats:
        """Where the queue stands: waiting, running (admitted, unfinished), admitted within
        its rate window ending at `now`, the oldest waiting run's created_at."""
        ...

    async def next_admission(self, *, now: float) -> float | None:
        """The soonest time after `now` at which the clock alone may make a waiting queued run
        admissible (its delay ends, or a rate window with runs waiting frees a start), for an
        idle worker to wake then; None if there is no such time."""
        ...

    async def run_queue(self, run_id: str) -> RunQueue | None:
        """The queue columns of a queued run and, while it waits, how many waiting runs of
        its queue come before it; None for a run that is not queued (or does not exist)."""
        ...

    async def queue_runs(self, name: str, *, waiting: bool, limit: int) -> list[QueuedRun]:
        """The queue's unfinished runs, at most `limit`: the waiting ones in the order
        run_queue counts ahead (priority, then ready_at, created_at), or the admitted ones by
        admission time."""

    def debounce_run(
        self, run: NewRun, first_event: EventRecord, *, max_wait: float | None = None
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        """A debounced start (storage._debounce_ops): `run` is queued, its dedupe_key names
        the burst, its ready_at is when it may start. If a run of run.queue holds the key and
        still waits (pending, never admitted nor claimed, nothing after its first event nor in
        its inbox), it is rearmed, atomically: its input and version become run's, its first
        event becomes `first_event` (checksum recomputed, created_at kept), its ready_at
        run.ready_at capped at its created_at + max_wait; gives (its row, False). Otherwise a
        live holder (admitted, running) is moved to the key `key#<its run id>` and `run` is
        created: (new row, True).
        Atomic between processes: calls of one key serialize, and a rearm never takes a run a
        claim admitted (the new burst begins instead). ValueError for a run without queue,
        dedupe_key or ready_at."""
        ...

    def cancel_waiting(self, append: Append) -> asyncio.Future[bool]:
        """End a queued run that still waits (storage._cancel_ops): pending, never admitted
        nor claimed (no owner, epoch 0), its log its first event only. If it does, `append`
        (events after seq 1, a final status, no fence) is applied as Store.append applies
        one, atomically with the check: its events, row update, consumed items and sends;
        gives True. Otherwise (admitted, claimed, appended to, ended, not queued, no such
        run) nothing is written: False. Atomic between processes: of this and a claim
        admitting the run at once, one wins. ValueError for an append that does not follow
        seq 1, has no events or final status, or has a fence."""
        ...


@runtime_checkable
class WorkSignal(Protocol):
    """A store that can tell idle workers when another process made a run claimable
    (PostgreSQL: LISTEN/NOTIFY). Workers of stores without it rely on their poll alone."""

    async def wait_for_work(self, timeout: float) -> bool:
        """Return True when woken by a notification, False after `timeout` seconds."""
        ...

    async def notify_work(self) -> None:
        """Wake every idle worker (after the writes submitted before this one commit): a
        queued run ended, so its queue may admit another."""
        ...


@runtime_checkable
class RunChanges(Protocol):
    """A store that announces, across processes, commits that waiters on a run care about (an
    inbox item sent to it, its end, a projection written): PostgreSQL's LISTEN/NOTIFY. Without
    it (SQLite, memory), other processes' changes are seen by polling."""

    def on_run_change(self, callback: Callable[[str], None]) -> None:
        """Call `callback(run_id)` in the event loop for each announcement, once listening."""
        ...

    async def listen_runs(self) -> bool:
        """Start listening (idempotent; again after a lost connection). False if it cannot."""
        ...
