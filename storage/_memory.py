"""An in-memory store for tests and experiments: the same semantics as the SQL backends, no
durability. Writes apply at once; the futures they return are already resolved."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

import msgspec

from storage._cancel_ops import check_cancel_waiting
from storage._checksum import checksum_of, verified
from storage._completions import CompletionRecord, Settled
from storage._debounce_ops import check_debounced, rearmed_ready_at
from storage._errors import (
    LeaseLostError,
    RunNotFoundError,
    SequenceConflictError,
    StoreClosedError,
)
from storage._memory_completions import MemoryCompletions
from storage._memory_histories import MemoryHistories
from storage._memory_queues import MemoryQueues
from storage._memory_streams import MemoryStreams, StreamTable
from storage._memory_updates import MemoryUpdates
from storage._queue_ops import QueuedRun, QueueRecord, QueueStats, RunQueue
from storage._records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    FORGET_WORKERS_AFTER,
    Append,
    Claim,
    DefinitionRecord,
    EventRecord,
    Fence,
    InboxItem,
    NewInboxItem,
    NewRun,
    Release,
    RunQuery,
    RunRecord,
    RunValue,
    SnapshotRecord,
    WorkerRecord,
    already_stored,
    check_append,
    check_history,
    check_reopen,
    created_record,
)
from storage._schedule_ops import ScheduleRecord
from storage._update_records import UpdateRecord
from storage._values_ops import memory_upsert
from storage._values_store import MemoryValues


# Each base holds one capability's rows and methods (histories, values, streams, updates).
class MemoryStore(MemoryHistories, MemoryValues, MemoryStreams, MemoryUpdates):
    def __init__(self, url: str = "memory://") -> None:
        self._url = url
        self._runs: dict[str, RunRecord] = {}
        # Each event with the checksum it was written with, verified on every read as the SQL
        # backends do (so a test that changes a stored payload sees the same error).
        self._events: dict[str, list[tuple[EventRecord, int]]] = {}
        self._chains: dict[str, dict[int, list[float | None]]] = {}
        self._inbox: dict[int, InboxItem] = {}  # by id, in arrival order
        self._last_inbox_id = 0
        self._workers: dict[str, WorkerRecord] = {}
        self._definitions: dict[tuple[str, str], DefinitionRecord] = {}
        self._schedules: dict[str, ScheduleRecord] = {}
        self._queues = MemoryQueues()
        self._completions = MemoryCompletions()
        self._values: dict[tuple[str, str], RunValue] = {}  # see storage._values_ops
        self._streams = StreamTable()
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._updates: dict[tuple[str, str], UpdateRecord] = {}
        self._open = False

    @property
    def url(self) -> str:
        return self._url

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosedError("the memory store is not open")

    def create_run(
        self, run: NewRun, first_event: EventRecord, history: Sequence[EventRecord] = ()
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        fut: asyncio.Future[tuple[RunRecord, bool]] = asyncio.get_running_loop().create_future()
        try:
            self._check_open()
            if history:
                check_history(run, first_event, history)
            existing = self._runs.get(run.run_id)
            queued = run.queue is not None and not history
            holder = self._queues.holder(run, self._runs) if queued else None
            if existing is None and holder is not None:
                existing = self._runs[holder]
            if existing is not None:
                fut.set_result((existing, False))
                return fut
            record = created_record(run, first_event, history)
            self._runs[run.run_id] = record
            if queued:
                self._queues.add(run)
            self._events[run.run_id] = [(e, checksum_of(e)) for e in (first_event, *history)]
            fut.set_result((record, True))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def debounce_run(
        self, run: NewRun, first_event: EventRecord, *, max_wait: float | None = None
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        fut: asyncio.Future[tuple[RunRecord, bool]] = asyncio.get_running_loop().create_future()
        try:
            self._check_open()
            check_debounced(run, first_event, max_wait)
            holder = self._queues.holder(run, self._runs)
            if holder is not None:
                old = self._runs[holder]
                if (
                    old.workflow == run.workflow
                    and old.status == "pending"
                    and self._queues.waiting(holder)
                    and old.owner is None
                    and old.last_seq == 1
                    and not any(i.run_id == holder for i in self._inbox.values())
                ):
                    ready = rearmed_ready_at(run, old.created_at, max_wait)
                    changes = {"input": run.input, "version": run.version, "ready_at": ready}
                    self._runs[holder] = _replace(old, {**changes, "updated_at": run.created_at})
                    created = self._events[holder][0][0].created_at
                    event = EventRecord(holder, 1, first_event.type, first_event.data, created)
                    self._events[holder][0] = (event, checksum_of(event))
                    fut.set_result((self._runs[holder], False))
                    return fut
                self._queues.next_generation(holder)
            fut.set_result(self.create_run(run, first_event).result())
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def append(self, append: Append) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._apply(append)
            fut.set_result(None)
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def cancel_waiting(self, append: Append) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        try:
            self._check_open()
            check_cancel_waiting(append)
            run = self._runs.get(append.run_id)
            waiting = (
                run is not None
                and run.queue is not None
                and run.status == "pending"
                and self._queues.waiting(run.run_id)
                and run.owner is None
                and run.epoch == 0
                and run.last_seq == 1
            )
            if waiting:
                self._apply(append)
            fut.set_result(waiting)
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def _apply(self, append: Append) -> None:
        self._check_open()
        check_append(append)
        run = self._runs.get(append.run_id)
        if run is None:
            raise RunNotFoundError(append.run_id)
        fence = append.fence
        if fence is not None and (run.owner != fence.owner or run.epoch != fence.epoch):
            raise LeaseLostError(append.run_id, fence.owner, fence.epoch, run.owner, run.epoch)
        if run.last_seq != append.expected_last_seq:
            raise SequenceConflictError(append.run_id, append.expected_last_seq, run.last_seq)
        # An append without events still applies its update (as the SQL backends do).
        changes: dict[str, object] = {}
        if append.events:
            self._events[append.run_id].extend((e, checksum_of(e)) for e in append.events)
            last = append.events[-1]
            changes = {"last_seq": last.seq, "updated_at": last.created_at}
        update = append.update
        if update is not None:
            for name in ("status", "result", "error", "finished_at"):
                value = getattr(update, name)
                if value is not None:
                    changes[name] = value
            if update.status in FINAL_STATUSES:
                changes["ready_at"] = None
        self._runs[append.run_id] = _replace(run, changes)
        for item_id in append.consume:
            found = self._inbox.get(item_id)
            if found is not None and found.run_id == append.run_id:
                del self._inbox[item_id]
        for new in append.send:
            self._deliver(new, strict=False)
        self._completions.insert(append.run_id, append.completions)
        memory_upsert(self._values, append)
        self._streams.project(append.run_id, append.stream)
        if append.updates:
            self.apply_update_changes(append.run_id, append.updates)

    def _deliver(self, new: NewInboxItem, *, strict: bool) -> InboxItem | None:
        """Insert (or find, by dedupe key) an item and wake its run; None if the run is
        missing and not strict."""
        run = self._runs.get(new.run_id)
        if run is None:
            if strict:
                raise RunNotFoundError(new.run_id)
            return None
        item = None
        if new.dedupe_key is not None:
            item = next(
                (
                    i
                    for i in self._inbox.values()
                    if i.run_id == new.run_id and i.dedupe_key == new.dedupe_key
                ),
                None,
            )
        if item is None:
            self._last_inbox_id += 1
            item = new.stored(self._last_inbox_id)
            self._inbox[item.id] = item
        if run.status in ACTIVE_STATUSES and (
            run.ready_at is None or run.ready_at > new.created_at
        ):
            self._runs[run.run_id] = _replace(run, {"ready_at": new.created_at})
        return item

    async def reopen_run(
        self, run_id: str, event: EventRecord, *, statuses: Collection[str], now: float
    ) -> RunRecord:
        self._check_open()
        run = self._runs.get(run_id)
        check_reopen(run_id, event, None if run is None else (run.status, run.last_seq), statuses)
        assert run is not None
        self._queues.reopen(run_id, self._runs)
        reopened = _replace(
            run,
            {
                "status": "pending",
                "result": None,
                "error": None,
                "finished_at": None,
                "owner": None,
                "lease_expires_at": None,
                "ready_at": now,
                "updated_at": now,
                "last_seq": event.seq,
            },
        )
        self._events[run_id].append((event, checksum_of(event)))
        self._runs[run_id] = reopened
        return reopened

    async def read_events(self, run_id: str, after_seq: int = 0) -> list[EventRecord]:
        self._check_open()
        rows = (
            (e.seq, e.type, e.data, e.created_at, checksum)
            for e, checksum in self._events.get(run_id, ())
            if e.seq > after_seq
        )
        return verified(run_id, rows, self._url)

    async def get_run(self, run_id: str) -> RunRecord | None:
        self._check_open()
        return self._runs.get(run_id)

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        self._check_open()
        rows = [
            r
            for r in self._runs.values()
            if (query.status is None or r.status == query.status)
            and (query.workflow is None or r.workflow == query.workflow)
            and (query.before is None or (r.created_at, r.run_id) < query.before)
        ]
        rows.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        return rows[: query.limit]

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
        self._check_open()
        allowed = None if eligible is None else set(eligible)
        excluded = set(exclude)
        candidates = sorted(
            (
                r
                for r in self._runs.values()
                if r.status in ACTIVE_STATUSES
                and (r.owner is None or (r.lease_expires_at or 0.0) < now)
                and r.ready_at is not None
                and r.ready_at <= now
                and (allowed is None or (r.workflow, r.version) in allowed)
                and r.run_id not in excluded
                and not self._queues.waiting(r.run_id)
            ),
            key=lambda r: (r.ready_at or 0.0, r.created_at, r.run_id),
        )
        claims: list[Claim] = []
        for run in candidates[:limit]:
            claimed = _replace(
                run, {"owner": owner, "epoch": run.epoch + 1, "lease_expires_at": now + lease_ttl}
            )
            self._runs[run.run_id] = claimed
            claims.append(Claim(run=claimed, fence=Fence(owner, claimed.epoch)))
        # Then the queues admit what they can into the slots left.
        for run_id in self._queues.admit(self._runs, owner, limit - len(claims), now, allowed):
            run = self._runs[run_id]
            claimed = _replace(
                run, {"owner": owner, "epoch": run.epoch + 1, "lease_expires_at": now + lease_ttl}
            )
            self._runs[run_id] = claimed
            claims.append(Claim(run=claimed, fence=Fence(owner, claimed.epoch)))
        return claims

    async def renew_leases(
        self,
        owner: str,
        *,
        lease_ttl: float,
        now: float,
        run_ids: Sequence[str] | None = None,
    ) -> int:
        self._check_open()
        wanted = None if run_ids is None else set(run_ids)
        count = 0
        for run_id, run in list(self._runs.items()):
            if wanted is not None and run_id not in wanted:
                continue
            if run.owner == owner and run.status in ACTIVE_STATUSES:
                self._runs[run_id] = _replace(run, {"lease_expires_at": now + lease_ttl})
                count += 1
        return count

    async def release_leases(self, releases: Sequence[Release]) -> None:
        self._check_open()
        for rel in releases:
            run = self._runs.get(rel.run_id)
            if run is None or run.owner != rel.fence.owner or run.epoch != rel.fence.epoch:
                continue
            changes: dict[str, object] = {"owner": None, "lease_expires_at": None}
            if run.status in ACTIVE_STATUSES:
                ready: float | None = None
                if not rel.park:
                    ready = rel.ready_at if rel.ready_at is not None else run.created_at
                # An item that arrived while the run was leased must not be slept through.
                oldest = min(
                    (i.created_at for i in self._inbox.values() if i.run_id == run.run_id),
                    default=None,
                )
                if oldest is not None and (ready is None or oldest < ready):
                    ready = oldest
                changes["ready_at"] = ready
            self._runs[rel.run_id] = _replace(run, changes)

    async def send(self, item: NewInboxItem) -> InboxItem:
        self._check_open()
        sent = self._deliver(item, strict=True)
        assert sent is not None
        return sent

    async def read_inbox(self, run_ids: Sequence[str]) -> list[InboxItem]:
        self._check_open()
        wanted = set(run_ids)
        return [i for i in self._inbox.values() if i.run_id in wanted]

    async def settle_completion(
        self, run_id: str, pos: int, nonce: str, *, status: str, now: float, item: NewInboxItem
    ) -> Settled:
        self._check_open()
        run = self._runs.get(run_id)
        return self._completions.settle(
            run, pos, nonce, status, now, item, lambda i: self._deliver(i, strict=True)
        )

    async def list_completions(self, run_id: str) -> list[CompletionRecord]:
        self._check_open()
        return self._completions.list(run_id)

    async def put_snapshot(self, record: SnapshotRecord) -> None:
        self._check_open()
        run = self._runs.get(record.run_id)
        old = self._snapshots.get(record.run_id)
        if run is not None and run.last_seq >= record.seq and (old is None or record.seq > old.seq):
            self._snapshots[record.run_id] = record

    async def get_snapshot(self, run_id: str) -> SnapshotRecord | None:
        self._check_open()
        return self._snapshots.get(run_id)

    async def prune_runs(self, finished_before: float, *, limit: int = 1000) -> int:
        self._check_open()

        def parent_needs(run: RunRecord) -> bool:
            parent = self._runs.get(run.parent_run_id) if run.parent_run_id else None
            return parent is not None and parent.status in ACTIVE_STATUSES

        doomed = sorted(
            (
                r
                for r in self._runs.values()
                if r.status in FINAL_STATUSES
                and r.finished_at is not None
                and r.finished_at < finished_before
                and not parent_needs(r)
            ),
            key=lambda r: (r.finished_at or 0.0, r.run_id),
        )[: max(limit, 0)]
        gone = {r.run_id for r in doomed}
        self._completions.forget(gone)
        for run_id in gone:
            del self._runs[run_id]
            self._events.pop(run_id, None)
            self._chains.pop(run_id, None)
            self._snapshots.pop(run_id, None)
        self._values = {k: v for k, v in self._values.items() if k[0] not in gone}
        self._streams.drop(gone)
        self._inbox = {k: i for k, i in self._inbox.items() if i.run_id not in gone}
        self._forget_updates(gone)
        return len(gone)

    async def heartbeat_worker(
        self, owner: str, capabilities: Sequence[tuple[str, str]], *, now: float, ttl: float
    ) -> None:
        self._check_open()
        known = self._workers.get(owner)
        forgotten = now - FORGET_WORKERS_AFTER
        self._workers = {o: w for o, w in self._workers.items() if w.expires_at >= forgotten}
        self._workers[owner] = WorkerRecord(
            owner=owner,
            capabilities=tuple((w, v) for w, v in capabilities),
            started_at=now if known is None else known.started_at,
            last_seen=now,
            expires_at=now + ttl,
        )

    async def list_workers(self, *, now: float) -> list[WorkerRecord]:
        self._check_open()
        return sorted(
            (w for w in self._workers.values() if w.expires_at > now), key=lambda w: w.owner
        )

    async def remove_worker(self, owner: str) -> None:
        self._check_open()
        self._workers.pop(owner, None)

    async def put_definition(self, record: DefinitionRecord) -> tuple[DefinitionRecord, bool]:
        self._check_open()
        key = (record.name, record.version)
        stored = self._definitions.get(key)
        if stored is not None:
            return already_stored(stored, record), False
        self._definitions[key] = record
        return record, True

    async def get_definition(self, name: str, version: str) -> DefinitionRecord | None:
        self._check_open()
        return self._definitions.get((name, version))

    async def list_definitions(self, name: str | None = None) -> list[DefinitionRecord]:
        self._check_open()
        return sorted(
            (d for d in self._definitions.values() if name is None or d.name == name),
            key=lambda d: (d.name, d.created_at, d.version),
        )

    async def count_definitions(self) -> int:
        self._check_open()
        return len(self._definitions)

    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        self._check_open()
        old = self._schedules.get(record.name)
        if old is None:
            self._schedules[record.name] = record
            return record
        spec = ("workflow", "cron", "timezone", "catchup", "catchup_limit", "grace", "overlap")
        if all(getattr(old, f) == getattr(record, f) for f in spec):
            return old
        restart = (old.cron, old.timezone) != (record.cron, record.timezone)
        new = msgspec.structs.replace(
            old,
            **{f: getattr(record, f) for f in spec},
            updated_at=record.updated_at,
            revision=old.revision + 1,
            next_tick=record.next_tick if restart else old.next_tick,
            holding=False if restart else old.holding,
        )
        self._schedules[record.name] = new
        return new

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        self._check_open()
        return self._schedules.get(name)

    async def list_schedules(self) -> list[ScheduleRecord]:
        self._check_open()
        return [self._schedules[n] for n in sorted(self._schedules)]

    async def update_schedule(self, record: ScheduleRecord, expected_revision: int) -> bool:
        self._check_open()
        old = self._schedules.get(record.name)
        if old is None or old.revision != expected_revision:
            return False
        self._schedules[record.name] = msgspec.structs.replace(
            old,
            paused=record.paused,
            next_tick=record.next_tick,
            last_tick=record.last_tick,
            last_run_id=record.last_run_id,
            holding=record.holding,
            updated_at=record.updated_at,
            revision=expected_revision + 1,
        )
        return True

    # ------------------------------------------------------------------------ queues

    async def put_queue(self, record: QueueRecord) -> None:
        self._check_open()
        self._queues.queues[record.name] = record

    async def get_queue(self, name: str) -> QueueRecord | None:
        self._check_open()
        return self._queues.queues.get(name)

    async def list_queues(self) -> list[QueueRecord]:
        self._check_open()
        return [self._queues.queues[n] for n in sorted(self._queues.queues)]

    async def next_admission(self, *, now: float) -> float | None:
        self._check_open()
        return self._queues.next_admission(self._runs, now)

    async def queue_stats(self, name: str, *, now: float) -> QueueStats:
        self._check_open()
        return self._queues.stats(name, self._runs, now)

    async def run_queue(self, run_id: str) -> RunQueue | None:
        self._check_open()
        return self._queues.place(run_id, self._runs)

    async def queue_runs(self, name: str, *, waiting: bool, limit: int) -> list[QueuedRun]:
        self._check_open()
        return self._queues.runs(name, self._runs, waiting=waiting)[:limit]


def _replace(run: RunRecord, changes: dict[str, object]) -> RunRecord:
    return msgspec.structs.replace(run, **changes)
