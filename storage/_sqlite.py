"""The SQLite backend: an embedded, zero-configuration store in one file.

WAL mode, synchronous=FULL by default (a committed step survives power loss), busy_timeout, and
BEGIN IMMEDIATE for every write. All writes of this process go through one writer thread with
group commit (storage._sqlite_writer); reads use a separate aiosqlite connection, which WAL lets
proceed while the writer commits. Several processes may share the file: SQLite's lock serializes
their writers and leases decide who runs what.

Reads never need the write lock: opening a current database is plain reads (storage._sqlite_open),
and only a write waits for another process's lock, saying so after a second
(storage._sqlite_lock). A file this process may not write is opened read-only.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from contextlib import closing

import aiosqlite

from storage import _cancel_ops as cancelling
from storage import _completions as completions
from storage import _completions_sqlite as completions_sqlite
from storage import _debounce_ops as debounce
from storage import _history_ops as history
from storage import _queue_ops as queues
from storage import _schedule_ops as sched
from storage import _snapshot_ops as snapshots
from storage import _sqlite_ops as ops
from storage import _updates_ops as updates
from storage import _updates_sql as upsql
from storage._checksum import verified
from storage._completions import CompletionRecord, Settled
from storage._errors import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    StoreClosedError,
)
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
    SnapshotRecord,
    WorkerRecord,
    worker_from_row,
)
from storage._schedule_ops import ScheduleRecord
from storage._sqlite_lock import LockWaits, begin_immediate
from storage._sqlite_open import (
    Target,
    create_or_migrate,
    damaged,
    enable_wal,
    explore,
    inspect_path,
    is_damage,
    plan,
    refuse_read_only,
)
from storage._sqlite_writer import SQLiteWriter
from storage._streams_ops import SQLiteStreams
from storage._update_records import NewUpdate, UpdateChange, UpdateRecord
from storage._updates_ops import UpdateRequested
from storage._values_store import SQLiteValues

SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")


class SQLiteStore(SQLiteValues, SQLiteStreams):
    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 5000,
        inline_commits: bool = True,
        lock_timeout: float | None = None,
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._inline_commits = inline_commits
        self._writer: SQLiteWriter | None = None
        self._reader: aiosqlite.Connection | None = None
        self._read_only: str | None = None  # why, when this process may not write the file
        self._waits = LockWaits(path, lock_timeout)

    @property
    def lock_timeout(self) -> float | None:
        """How long a write waits for another process's write lock before it fails with
        DatabaseUnavailableError (None, the default: as long as it takes)."""
        return self._waits.timeout

    @lock_timeout.setter
    def lock_timeout(self, seconds: float | None) -> None:
        self._waits.timeout = seconds

    @property
    def on_lock_wait(self) -> Callable[[str], None] | None:
        """Called with one line when a write has waited a second for another process's write
        lock (and every 30 s after); None, the default, logs a warning instead."""
        return self._waits.notice

    @on_lock_wait.setter
    def on_lock_wait(self, notice: Callable[[str], None] | None) -> None:
        self._waits.notice = notice

    @property
    def read_only(self) -> str | None:
        """Once open: why this process may not write the database, or None if it may."""
        return self._read_only

    @property
    def url(self) -> str:
        return f"sqlite:///{self._path}"

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions committed, writes in them) since open: writes/commits is the mean
        group-commit batch size."""
        w = self._writer
        return (w.commits, w.writes) if w is not None else (0, 0)

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        """Open the database, creating or migrating it only when it needs that (see
        storage._sqlite_open for what a path may hold, and read-only files)."""
        if self._reader is not None:
            return
        self._waits.closing_at = None  # a store closed before may be opened again
        try:
            target, reader_uri = await asyncio.to_thread(self._prepare)
            if target.read_only is None:
                writer = SQLiteWriter(self._connect, inline=self._inline_commits, waits=self._waits)
                writer.start(asyncio.get_running_loop())
                self._writer = writer
            self._read_only = target.read_only
            reader = await aiosqlite.connect(
                reader_uri, uri=reader_uri.startswith("file:"), isolation_level=None
            )
            await reader.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            self._reader = reader
        except sqlite3.DatabaseError as exc:
            await self.close()
            if is_damage(exc):
                raise DatabaseOpenError(damaged(self._path, exc)) from None
            # The file can't be opened (locked, permissions...), which is not damage.
            raise DatabaseOpenError(f"cannot open SQLite database {self._path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    def _prepare(self) -> tuple[Target, str]:
        """Check the file and its schema with plain reads; create or migrate it only if it
        needs it (a write, waiting for the lock). The URI the reader connects with."""
        target = inspect_path(self._path)
        found, uri = explore(target, self._busy_timeout_ms)
        action = plan(self._path, found)
        if action != "ready" and target.read_only is not None:
            raise refuse_read_only(target, found, action)
        if target.read_only is None:
            with closing(self._connect()) as conn:
                if action == "create":
                    # WAL first: then committing the schema never waits for readers (the
                    # other processes creating the file too).
                    enable_wal(conn, self._path, self._busy_timeout_ms)
                if action != "ready":
                    create_or_migrate(conn, self._path, self._begin)
                enable_wal(conn, self._path, self._busy_timeout_ms)
        return target, uri

    def _begin(self, conn: sqlite3.Connection) -> None:
        # begin_immediate does the waiting for the lock (saying so), not SQLite's busy handler;
        # the rest of the transaction keeps busy_timeout.
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            begin_immediate(conn, self._waits)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        if writer is not None:
            await writer.stop()
        if reader is not None:
            await reader.close()

    def _w(self) -> SQLiteWriter:
        if self._writer is None:
            if self._reader is not None and self._read_only is not None:
                raise DatabaseOpenError(
                    f"cannot write to SQLite database {self._path}: it was opened read-only "
                    f"({self._read_only}); reading works, but this needs to write: make the "
                    "file (and its directory) writable, or work on a writable copy"
                )
            raise StoreClosedError(f"SQLite store {self._path} is not open")
        return self._writer

    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreClosedError(f"SQLite store {self._path} is not open")
        return self._reader

    def create_run(
        self, run: NewRun, first_event: EventRecord, history: Sequence[EventRecord] = ()
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        op = functools.partial(ops.create_run, run=run, first=first_event, history=tuple(history))
        return self._w().submit(op)

    def append(self, append: Append) -> asyncio.Future[None]:
        return self._w().submit(functools.partial(ops.append, app=append))

    def debounce_run(
        self, run: NewRun, first_event: EventRecord, *, max_wait: float | None = None
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        op = functools.partial(
            debounce.debounce_run,
            run=run,
            first=first_event,
            max_wait=max_wait,
            select_run=ops._SELECT_RUN,
            row_to_run=ops.row_to_run,
        )
        return self._w().submit(op)

    def cancel_waiting(self, append: Append) -> asyncio.Future[bool]:
        return self._w().submit(functools.partial(cancelling.cancel_waiting, app=append))

    async def reopen_run(
        self, run_id: str, event: EventRecord, *, statuses: Collection[str], now: float
    ) -> RunRecord:
        op = functools.partial(
            ops.reopen, run_id=run_id, event=event, statuses=frozenset(statuses), now=now
        )
        result: RunRecord = await self._w().submit(op)
        return result

    async def read_events(self, run_id: str, after_seq: int = 0) -> list[EventRecord]:
        rows = await self._read(ops.SELECT_EVENTS, (run_id, after_seq))
        return verified(run_id, rows, self._path)

    async def read_history(self, run_id: str) -> list[EventRecord]:
        rows = await self._read(history.SELECT_HISTORY, (run_id, run_id))
        return verified(run_id, rows, self._path)

    async def list_histories(self, run_id: str) -> list[HistoryRecord]:
        rows = await self._read(history.SELECT_CHAIN, (run_id,))
        oldest = await self._read(history.OLDEST_EVENT, (run_id,))
        return history.chain(rows, oldest[0][0] if oldest else None)

    async def record_history(self, run_id: str, mark: HistoryMark) -> None:
        await self._w().submit(functools.partial(history.record_history, run_id=run_id, mark=mark))

    async def put_snapshot(self, record: SnapshotRecord) -> None:
        await self._w().submit(functools.partial(snapshots.put_snapshot, record=record))

    async def get_snapshot(self, run_id: str) -> SnapshotRecord | None:
        rows = await self._read(snapshots.GET_SNAPSHOT, (run_id,))
        return snapshots.row_to_snapshot(tuple(rows[0])) if rows else None

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._read(ops._SELECT_RUN, (run_id,))
        return ops.row_to_run(rows[0]) if rows else None

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        where: list[str] = []
        params: list[object] = []
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status)
        if query.workflow is not None:
            where.append("workflow = ?")
            params.append(query.workflow)
        if query.before is not None:
            where.append("(created_at, run_id) < (?, ?)")
            params += [query.before[0], query.before[1]]
        sql = f"SELECT {ops.RUN_COLUMNS} FROM durable_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id DESC LIMIT ?"
        params.append(query.limit)
        return [ops.row_to_run(r) for r in await self._read(sql, tuple(params))]

    async def _read(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        try:
            return list(await self._r().execute_fetchall(sql, params))
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise DatabaseUnavailableError(damaged(self._path, exc)) from None
            raise DatabaseUnavailableError(f"SQLite read from {self._path} failed: {exc}") from None

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
        elig = None if eligible is None else tuple(eligible)
        if not await self._anything_claimable(owner, now, elig):
            return []  # an idle poll stays a read: no write lock, no commit
        op = functools.partial(
            ops.claim,
            owner=owner,
            limit=limit,
            lease_ttl=lease_ttl,
            now=now,
            eligible=elig,
            exclude=tuple(exclude),
        )
        result: list[Claim] = await self._w().submit(op)
        return result

    async def _anything_claimable(
        self, owner: str, now: float, eligible: tuple[tuple[str, str], ...] | None
    ) -> bool:
        if eligible is not None and not eligible:
            return False
        rows = await self._read(
            "SELECT 1 FROM durable_runs WHERE status IN ('pending', 'running') "
            "AND (owner IS NULL OR lease_expires_at < ?) AND ready_at IS NOT NULL "
            f"AND ready_at <= ? AND {queues.ADMITTED} LIMIT 1",
            (now, now),
        )
        # Runs waiting in queues are worth the write lock only if a queue has room: a worker
        # polling a full queue would otherwise take it (and commit) every poll interval.
        return bool(rows) or await queues.could_admit(self._read, owner, now)

    async def renew_leases(
        self,
        owner: str,
        *,
        lease_ttl: float,
        now: float,
        run_ids: Sequence[str] | None = None,
    ) -> int:
        ids = None if run_ids is None else tuple(run_ids)
        op = functools.partial(ops.renew, owner=owner, lease_ttl=lease_ttl, now=now, run_ids=ids)
        result: int = await self._w().submit(op)
        return result

    async def release_leases(self, releases: Sequence[Release]) -> None:
        if releases:
            await self._w().submit(functools.partial(ops.release, releases=tuple(releases)))

    def request_update(
        self, req: NewUpdate, start: tuple[NewRun, EventRecord] | None = None
    ) -> asyncio.Future[UpdateRequested]:
        return self._w().submit(functools.partial(updates.request_update, req=req, start=start))

    async def reject_update(self, run_id: str, change: UpdateChange, item_id: int) -> None:
        op = functools.partial(updates.reject_update, run_id=run_id, change=change, item_id=item_id)
        await self._w().submit(op)

    async def get_update(self, run_id: str, update_id: str) -> UpdateRecord | None:
        rows = await self._read(upsql.SELECT_UPDATE, (run_id, update_id))
        return upsql.row_to_update(rows[0]) if rows else None

    async def list_updates(self, run_id: str, *, limit: int = 100) -> list[UpdateRecord]:
        rows = await self._read(upsql.LIST_UPDATES, (run_id, limit))
        return [upsql.row_to_update(r) for r in rows]

    async def send(self, item: NewInboxItem) -> InboxItem:
        result: InboxItem = await self._w().submit(functools.partial(ops.send, item=item))
        return result

    async def settle_completion(
        self, run_id: str, pos: int, nonce: str, *, status: str, now: float, item: NewInboxItem
    ) -> Settled:
        op = functools.partial(
            completions_sqlite.settle,
            run_id=run_id, pos=pos, nonce=nonce, status=status, now=now, item=item,
        )  # fmt: skip
        result: Settled = await self._w().submit(op)
        return result

    async def list_completions(self, run_id: str) -> list[CompletionRecord]:
        rows = await self._read(completions.LIST, (run_id,))
        return [completions.row_to_completion(r) for r in rows]

    async def read_inbox(self, run_ids: Sequence[str]) -> list[InboxItem]:
        if not run_ids:
            self._r()
            return []
        rows = await self._read(
            f"SELECT {ops.INBOX_COLUMNS} FROM durable_inbox "
            "WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (json.dumps(list(run_ids)),),
        )
        return [ops.row_to_item(r) for r in rows]

    async def prune_runs(self, finished_before: float, *, limit: int = 1000) -> int:
        op = functools.partial(ops.prune, finished_before=finished_before, limit=limit)
        result: int = await self._w().submit(op)
        return result

    async def heartbeat_worker(
        self, owner: str, capabilities: Sequence[tuple[str, str]], *, now: float, ttl: float
    ) -> None:
        caps = json.dumps([[w, v] for w, v in capabilities])
        op = functools.partial(
            ops.heartbeat_worker, owner=owner, capabilities=caps, now=now, ttl=ttl
        )
        await self._w().submit(op)

    async def list_workers(self, *, now: float) -> list[WorkerRecord]:
        rows = await self._read(
            "SELECT owner, capabilities, started_at, last_seen, expires_at FROM durable_workers "
            "WHERE expires_at > ? ORDER BY owner",
            (now,),
        )
        return [worker_from_row(*r) for r in rows]

    async def remove_worker(self, owner: str) -> None:
        await self._w().submit(functools.partial(ops.remove_worker, owner=owner))

    # ------------------------------------------------------------------------ definitions

    async def put_definition(self, record: DefinitionRecord) -> tuple[DefinitionRecord, bool]:
        op = functools.partial(ops.put_definition, record=record)
        result: tuple[DefinitionRecord, bool] = await self._w().submit(op)
        return result

    async def get_definition(self, name: str, version: str) -> DefinitionRecord | None:
        rows = await self._read(ops.SELECT_DEFINITION, (name, version))
        return ops.row_to_definition(rows[0]) if rows else None

    async def list_definitions(self, name: str | None = None) -> list[DefinitionRecord]:
        sql = f"SELECT {ops.DEFINITION_COLUMNS} FROM durable_definitions"
        params: tuple[object, ...] = ()
        if name is not None:
            sql += " WHERE name = ?"
            params = (name,)
        rows = await self._read(sql + " ORDER BY name, created_at, version", params)
        return [ops.row_to_definition(r) for r in rows]

    async def count_definitions(self) -> int:
        rows = await self._read("SELECT count(*) FROM durable_definitions", ())
        count: int = rows[0][0]
        return count

    # ------------------------------------------------------------------------ schedules

    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        result: ScheduleRecord = await self._w().submit(
            functools.partial(sched.put_schedule, record=record)
        )
        return result

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        rows = await self._read(sched.SQLITE_SELECT, (name,))
        return sched.row_to_schedule(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [sched.row_to_schedule(r) for r in await self._read(sched.SQLITE_LIST, ())]

    async def update_schedule(self, record: ScheduleRecord, expected_revision: int) -> bool:
        op = functools.partial(
            sched.update_schedule, record=record, expected_revision=expected_revision
        )
        result: bool = await self._w().submit(op)
        return result

    # ------------------------------------------------------------------------ queues

    async def put_queue(self, record: QueueRecord) -> None:
        await self._w().submit(functools.partial(queues.put_queue, record=record))

    async def get_queue(self, name: str) -> QueueRecord | None:
        rows = await self._read(queues.SQLITE_GET, (name,))
        return queues.row_to_queue(rows[0]) if rows else None

    async def list_queues(self) -> list[QueueRecord]:
        return [queues.row_to_queue(r) for r in await self._read(queues.SQLITE_LIST, ())]

    async def next_admission(self, *, now: float) -> float | None:
        rows = await self._read(queues.SQLITE_NEXT_ADMISSION, (now, now, now))
        return None if rows[0][0] is None else float(rows[0][0])

    async def queue_stats(self, name: str, *, now: float) -> QueueStats:
        queue = await self.get_queue(name)
        window = now - (queue.rate_period or 0.0) if queue is not None else now
        row = (await self._read(queues.SQLITE_STATS, (window, name)))[0]
        return QueueStats(name, row[0], row[1], row[2], row[3])

    async def run_queue(self, run_id: str) -> RunQueue | None:
        rows = await self._read(queues.SQLITE_RUN_QUEUE, (run_id,))
        if not rows:
            return None
        queue, priority, part, dedupe, admitted, ready, created = rows[0]
        ahead = 0
        if admitted is None:
            params = (queue, priority, priority, ready, created, run_id)
            ahead = (await self._read(queues.SQLITE_AHEAD, params))[0][0]
        return RunQueue(queue, priority, part, dedupe, admitted, ahead)

    async def queue_runs(self, name: str, *, waiting: bool, limit: int) -> list[QueuedRun]:
        sql = queues.QUEUE_RUNS.format("?", "?", "" if waiting else "NOT")
        return [QueuedRun(*row) for row in await self._read(sql, (name, limit))]
