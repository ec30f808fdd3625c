"""The SQLite backend: an embedded, zero-configuration store in one file.

WAL mode, synchronous=FULL by default (a committed step survives power loss), busy_timeout, and
BEGIN IMMEDIATE for every write. All writes of this process go through one writer thread with
group commit (storage._sqlite_writer); reads use a separate aiosqlite connection, which WAL lets
proceed while the writer commits. Several processes may share the file: SQLite's lock serializes
their writers and leases decide who runs what.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import aiosqlite
from sqlalchemy import create_engine, event, insert, select, update

from storage import _sqlite_ops as ops
from storage._errors import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    StoreClosedError,
)
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
    WorkerRecord,
    worker_from_row,
)
from storage._schema import MIGRATION_2_INDEXES, SCHEMA_VERSION, metadata, schema_info
from storage._sqlite_writer import SQLiteWriter

SYNCHRONOUS_MODES = ("off", "normal", "full", "extra")


class SQLiteStore:
    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 5000,
        inline_commits: bool = True,
    ) -> None:
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._inline_commits = inline_commits
        self._writer: SQLiteWriter | None = None
        self._reader: aiosqlite.Connection | None = None

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
        _check_path(self._path)
        try:
            await asyncio.to_thread(self._create_schema)
            writer = SQLiteWriter(self._connect, inline=self._inline_commits)
            writer.start(asyncio.get_running_loop())
            self._writer = writer
            reader = await aiosqlite.connect(self._path, isolation_level=None)
            await reader.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            self._reader = reader
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise DatabaseOpenError(_open_message(self._path, exc)) from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> object:
        # Switching a new file to WAL takes an exclusive lock. When two connections race for it
        # (two workers starting together), SQLite fails one with "database is locked" at once,
        # without waiting busy_timeout (waiting could deadlock): so retry, up to busy_timeout.
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        delay = 0.001
        while True:
            try:
                return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _create_schema(self) -> None:
        conn = self._connect()
        try:
            mode = self._enable_wal(conn)
            if str(mode).lower() != "wal":
                raise DatabaseOpenError(
                    f"cannot put SQLite database {self._path} in WAL mode (got {mode!r}); "
                    "is it on a network file system?"
                )
        finally:
            conn.close()
        # Processes opening a new file at once must not all see no tables and all create them
        # ("table durable_runs already exists"): the check and the creation run in one
        # BEGIN IMMEDIATE transaction (pysqlite would run the DDL with no transaction at all).
        engine = create_engine(
            f"sqlite:///{self._path}", connect_args={"timeout": 30, "isolation_level": None}
        )
        event.listen(engine, "begin", lambda sa: sa.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            with engine.begin() as sa:
                version: int | None = None
                if sa.dialect.has_table(sa, schema_info.name):
                    version = sa.execute(select(schema_info.c.version)).scalar()
                if version is not None and version > SCHEMA_VERSION:
                    raise DatabaseOpenError(
                        f"database {self._path} has schema version {version}, newer than this "
                        f"durable release understands ({SCHEMA_VERSION}); upgrade durable"
                    )
                # Creates what is missing: everything in a new file, the tables a newer
                # version added in an older one (with the indexes of those tables).
                metadata.create_all(sa)
                if version is None:
                    sa.execute(insert(schema_info).values(id=1, version=SCHEMA_VERSION))
                elif version < SCHEMA_VERSION:
                    # Indexes added to tables an older version already had (version 3 added
                    # only a table, durable_definitions, which create_all made).
                    if version < 2:
                        for index in MIGRATION_2_INDEXES:
                            index.create(sa, checkfirst=True)
                    sa.execute(
                        update(schema_info)
                        .where(schema_info.c.id == 1)
                        .values(version=SCHEMA_VERSION, note=f"migrated from {version} by durable")
                    )
        except Exception as exc:
            orig = getattr(exc, "orig", None)
            if isinstance(orig, sqlite3.DatabaseError):
                raise orig from None
            raise
        finally:
            engine.dispose()

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        reader, self._reader = self._reader, None
        if writer is not None:
            await writer.stop()
        if reader is not None:
            await reader.close()

    def _w(self) -> SQLiteWriter:
        if self._writer is None:
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

    async def reopen_run(
        self, run_id: str, event: EventRecord, *, statuses: Collection[str], now: float
    ) -> RunRecord:
        op = functools.partial(
            ops.reopen, run_id=run_id, event=event, statuses=frozenset(statuses), now=now
        )
        result: RunRecord = await self._w().submit(op)
        return result

    async def read_events(self, run_id: str, after_seq: int = 0) -> list[EventRecord]:
        rows = await self._read(
            "SELECT run_id, seq, type, data, created_at FROM durable_events "
            "WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        )
        return [EventRecord(*r) for r in rows]

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
        if not await self._anything_claimable(now, elig):
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
        self, now: float, eligible: tuple[tuple[str, str], ...] | None
    ) -> bool:
        if eligible is not None and not eligible:
            return False
        rows = await self._read(
            "SELECT 1 FROM durable_runs WHERE status IN ('pending', 'running') "
            "AND (owner IS NULL OR lease_expires_at < ?) AND ready_at IS NOT NULL "
            "AND ready_at <= ? LIMIT 1",
            (now, now),
        )
        return bool(rows)

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

    async def send(self, item: NewInboxItem) -> InboxItem:
        result: InboxItem = await self._w().submit(functools.partial(ops.send, item=item))
        return result

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


def _check_path(path: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise DatabaseOpenError(
            f"cannot open SQLite database {path}: directory {parent} does not exist "
            "(create it, or pass another --db / DURABLE_DATABASE_URL)"
        )
    target = Path(path)
    if target.exists() and not os.access(target, os.R_OK | os.W_OK):
        raise DatabaseOpenError(
            f"cannot open SQLite database {path}: no read/write permission on the file"
        )
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise DatabaseOpenError(
            f"cannot create SQLite database {path}: directory {parent} is not writable"
        )


def _open_message(path: str, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "file is not a database" in text:
        return f"cannot open {path}: it is not a SQLite database (or it is corrupted)"
    return f"cannot open SQLite database {path}: {text}"
