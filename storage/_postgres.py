"""The PostgreSQL backend: one database shared by many workers on many machines.

postgresql://user:password@host:5432/db?pool_size=10&schema=durable

- A bounded asyncpg pool per store (`pool_size`, default 10; `pool_min_size`, default 1):
  however many runs are in flight, the store never holds more connections than that. The
  writer, the readers and the LISTEN connection all come out of it.
- Writes go through one writer task with group commit (storage._postgres_writer); each
  statement has a fixed text, prepared once per connection by asyncpg.
- Claims lock candidates with FOR UPDATE SKIP LOCKED; every append checks the expected seq and
  the writer's lease (owner, epoch) in the same statement that writes it (fencing).
- A run that becomes claimable (created without an owner, released) sends NOTIFY on the
  store's channel at commit; wait_for_work() lets an idle worker sleep until then. A second
  channel announces run ids (signals, ends, ...): on_run_change() (storage._postgres_listen).
- `schema` keeps the tables in a schema of their own (created on first use); other query
  options are passed to asyncpg as libpq connection options.
- The schema is created or migrated on open (storage._postgres_schema).

Driver errors are translated into storage's own: a server that cannot be reached or went away
is DatabaseUnavailableError; bad credentials, a missing database or a schema too new is
DatabaseOpenError. Every message shows the URL with its password masked.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from storage import _cancel_pg as pgcancel
from storage import _completions as completions
from storage import _completions_pg as pgcompletions
from storage import _debounce_pg as pgdebounce
from storage import _postgres_ops as ops
from storage import _queue_pg as pgqueues
from storage import _schedule_ops as sched
from storage._checksum import verified
from storage._completions import CompletionRecord, Settled
from storage._errors import (
    DatabaseOpenError,
    DatabaseUnavailableError,
    DatabaseURLError,
    StorageError,
    StoreClosedError,
)
from storage._history_pg import PostgresHistories
from storage._pgurl import SCHEMES, mask_url
from storage._postgres_errors import translate
from storage._postgres_listen import CHANGES_CHANNEL, WORK_CHANNEL, Listener, channel_name
from storage._postgres_prune import PRUNE
from storage._postgres_schema import migrate
from storage._postgres_writer import PostgresWriter, announced, no_reset
from storage._queue_ops import (
    QUEUE_RUNS,
    QueuedRun,
    QueueRecord,
    QueueStats,
    RunQueue,
    queue_args,
    row_to_queue,
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
    already_stored,
    worker_from_row,
)
from storage._schedule_ops import ScheduleRecord
from storage._snapshot_pg import PostgresSnapshots
from storage._streams_pg import PostgresStreams
from storage._updates_pg import PostgresUpdates
from storage._values_store import PostgresValues

CHANNEL = WORK_CHANNEL
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


# Each base holds one capability's methods (histories, values, streams, snapshots, updates).
class PostgresStore(
    PostgresHistories, PostgresValues, PostgresStreams, PostgresSnapshots, PostgresUpdates
):
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_min_size: int = 1,
        schema: str | None = None,
    ) -> None:
        """`url` is a libpq-style postgresql:// URL for asyncpg (without this store's own
        options, which are the keyword arguments here; see from_url)."""
        if pool_size < 1 or not 0 <= pool_min_size <= pool_size:
            raise ValueError("need pool_size >= 1 and 0 <= pool_min_size <= pool_size")
        if schema is not None and not _IDENT.fullmatch(schema):
            raise ValueError(f"schema must be a plain identifier, not {schema!r}")
        self._dsn = url
        self._pool_size = pool_size
        self._pool_min_size = pool_min_size
        self._schema = schema
        options = [f"pool_size={pool_size}"] + ([f"schema={schema}"] if schema else [])
        self._url = mask_url(_add_query(url, "&".join(options)))
        # One channel per schema: several durable deployments may share a database.
        self.channel = CHANNEL if schema is None else f"{CHANNEL}_{schema}"
        self.changes_channel = channel_name(CHANGES_CHANNEL, schema)
        self._pool: Any = None
        self._writer: PostgresWriter | None = None
        self._listen: Listener | None = None
        self._run_callbacks: list[Callable[[str], None]] = []

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """Parse postgresql:// (also postgres://, postgresql+asyncpg://) with this store's
        options pool_size, pool_min_size and schema. Raises DatabaseURLError."""
        masked = mask_url(url)
        scheme, rest = url.split("://", 1)
        if scheme.lower() not in SCHEMES:
            raise DatabaseURLError(f"not a PostgreSQL URL: {masked}")
        parts = urlsplit("postgresql://" + rest)
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in query if k in ("pool_size", "pool_min_size", "schema")}
        passed = [(k, v) for k, v in query if k not in own]
        try:
            size = int(own.get("pool_size", "10"))
            min_size = int(own.get("pool_min_size", "1"))
        except ValueError:
            raise DatabaseURLError(
                f"bad PostgreSQL URL {masked}: pool_size and pool_min_size must be integers"
            ) from None
        if size < 1 or not 0 <= min_size <= size:
            raise DatabaseURLError(
                f"bad PostgreSQL URL {masked}: need pool_size >= 1 and "
                "0 <= pool_min_size <= pool_size"
            )
        schema = own.get("schema") or None
        if schema is not None and not _IDENT.fullmatch(schema):
            raise DatabaseURLError(
                f"bad PostgreSQL URL {masked}: schema must be a plain identifier "
                "(letters, digits, underscores; at most 63)"
            )
        dsn = urlunsplit(parts._replace(query=urlencode(passed)))
        return cls(dsn, pool_size=size, pool_min_size=min_size, schema=schema)

    @property
    def url(self) -> str:
        return self._url

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(transactions committed, writes in them) since open: writes/commits is the mean
        group-commit batch size."""
        w = self._writer
        return (w.commits, w.writes) if w is not None else (0, 0)

    async def open(self) -> None:
        if self._pool is not None:
            return
        settings: dict[str, str] = {}
        if "application_name=" not in self._dsn:  # let the URL name the connections
            settings["application_name"] = "durable"
        if self._schema is not None:
            settings["search_path"] = f'"{self._schema}"'
        if "idle_in_transaction_session_timeout" not in self._dsn:
            # The store's transactions never wait on the client between statements. A worker
            # paused mid-transaction (SIGSTOP, a stalled VM) would keep its row locks, and the
            # claims' SKIP LOCKED would pass over those runs for as long as it stays paused:
            # the server ends such a session instead, releasing them.
            settings["idle_in_transaction_session_timeout"] = "10000"
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._pool_min_size,
                max_size=self._pool_size,
                server_settings=settings,
                reset=no_reset,
            )
        except Exception as exc:
            raise self._translate(exc, "open") from None
        try:
            async with pool.acquire() as conn:
                schema = self._schema or await conn.fetchval("SELECT current_schema()")
                if schema is None:
                    raise DatabaseOpenError(
                        f"cannot open {self._url}: no schema on the search_path exists; "
                        "create one or add ?schema=NAME to the URL"
                    )
                await migrate(conn, schema, create_schema=self._schema is not None, where=self._url)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, Exception) and not isinstance(exc, StorageError):
                raise self._translate(exc, "open") from None
            raise
        self._pool = pool
        writer = PostgresWriter(
            pool,
            channel=self.channel,
            changes=self.changes_channel,
            translate=self._translate,
            where=self._url,
        )
        writer.start()
        self._writer = writer
        self._listen = Listener(
            pool,
            work_channel=self.channel,
            changes_channel=self.changes_channel,
            can_listen=self._pool_size >= 2,
            translate=self._translate,
        )
        for callback in self._run_callbacks:
            self._listen.on_run_change(callback)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        listen, self._listen = self._listen, None
        pool, self._pool = self._pool, None
        if writer is not None:
            await writer.stop()
        if pool is None:
            return
        if listen is not None:
            await listen.close()
        try:
            await pool.close()
        except Exception:
            # Closing politely needs the server; when it is gone, drop the connections.
            pool.terminate()

    def _w(self) -> PostgresWriter:
        if self._writer is None:
            raise StoreClosedError(f"PostgreSQL store {self._url} is not open")
        return self._writer

    def _p(self) -> Any:
        if self._pool is None:
            raise StoreClosedError(f"PostgreSQL store {self._url} is not open")
        return self._pool

    # ------------------------------------------------------------------------ writes

    def create_run(
        self, run: NewRun, first_event: EventRecord, history: Sequence[EventRecord] = ()
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        op = functools.partial(ops.create_run, run=run, first=first_event, history=tuple(history))
        return self._w().submit(op, notify=run.owner is None)

    def debounce_run(
        self, run: NewRun, first_event: EventRecord, *, max_wait: float | None = None
    ) -> asyncio.Future[tuple[RunRecord, bool]]:
        op = functools.partial(
            pgdebounce.debounce_run,
            run=run,
            first=first_event,
            max_wait=max_wait,
            select_run=ops.SELECT_RUN,
            row_to_run=ops.row_to_run,
        )
        return self._w().submit(op, notify=True)

    def cancel_waiting(self, append: Append) -> asyncio.Future[bool]:
        op = functools.partial(pgcancel.cancel_waiting, app=append)
        # Its parent is woken; its waiters learn it ended.
        return self._w().submit(op, notify=bool(append.send), announce=announced(append))

    async def reopen_run(
        self, run_id: str, event: EventRecord, *, statuses: Collection[str], now: float
    ) -> RunRecord:
        op = functools.partial(
            ops.reopen, run_id=run_id, event=event, statuses=frozenset(statuses), now=now
        )
        # The run is claimable now, as one created without an owner: tell idle workers.
        result: RunRecord = await self._w().submit(op, notify=True, announce=(run_id,))
        return result

    def append(self, append: Append) -> asyncio.Future[None]:
        # An append that sends wakes runs: tell idle workers at commit.
        fut: asyncio.Future[None] = self._w().submit(append, notify=bool(append.send))
        return fut

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
        if limit <= 0 or (elig is not None and not elig):
            self._w()
            return []
        if not await self._fetchval(ops.ANYTHING_CLAIMABLE, now):
            return []  # an idle poll stays a read: no write transaction
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
        writer = self._w()
        if releases:
            op = functools.partial(ops.release, releases=tuple(releases))
            await writer.submit(op, notify=True)

    async def notify_work(self) -> None:
        # An empty write whose commit notifies: queued after the writes already submitted (a
        # run's final append), so a woken worker sees what they changed.
        await self._w().submit(_nothing, notify=True)

    async def send(self, item: NewInboxItem) -> InboxItem:
        op = functools.partial(ops.send, item=item)
        # The worker executing the run (in any process) reads its inbox at commit.
        result: InboxItem = await self._w().submit(op, notify=True, announce=(item.run_id,))
        return result

    async def settle_completion(
        self, run_id: str, pos: int, nonce: str, *, status: str, now: float, item: NewInboxItem
    ) -> Settled:
        op = functools.partial(
            pgcompletions.settle,
            run_id=run_id, pos=pos, nonce=nonce, status=status, now=now, item=item,
        )  # fmt: skip
        # Wakes a parked run (work channel) and the worker executing it (changes channel).
        result: Settled = await self._w().submit(op, notify=True, announce=(run_id,))
        return result

    async def list_completions(self, run_id: str) -> list[CompletionRecord]:
        rows = await self._fetch(completions.PG_LIST, run_id)
        return [completions.row_to_completion(tuple(r)) for r in rows]

    async def prune_runs(self, finished_before: float, *, limit: int = 1000) -> int:
        # One statement on a pooled connection, outside the writer: a big prune does not hold
        # up the group commits of running runs, and rows they hold locked are skipped.
        count: int = await self._execute("prune", PRUNE, finished_before, max(limit, 0))
        return count

    async def heartbeat_worker(
        self, owner: str, capabilities: Sequence[tuple[str, str]], *, now: float, ttl: float
    ) -> None:
        caps = json.dumps([[w, v] for w, v in capabilities])
        await self._execute(
            "heartbeat", ops.HEARTBEAT_WORKER, *ops.heartbeat_args(owner, caps, now, ttl)
        )

    async def remove_worker(self, owner: str) -> None:
        await self._execute("remove_worker", ops.REMOVE_WORKER, owner)

    async def _execute(self, during: str, sql: str, *args: object) -> Any:
        """A single-statement write outside the writer (atomic on its own); fetchval's value."""
        pool = self._p()
        try:
            return await pool.fetchval(sql, *args)
        except Exception as exc:
            raise self._translate(exc, during) from None

    # ------------------------------------------------------------------------ reads

    async def read_inbox(self, run_ids: Sequence[str]) -> list[InboxItem]:
        rows = await self._fetch(ops.SELECT_INBOX, list(run_ids))
        return [ops.row_to_item(r) for r in rows]

    async def list_workers(self, *, now: float) -> list[WorkerRecord]:
        rows = await self._fetch(ops.LIST_WORKERS, now)
        return [worker_from_row(*r) for r in rows]

    async def read_events(self, run_id: str, after_seq: int = 0) -> list[EventRecord]:
        rows = await self._fetch(ops.SELECT_EVENTS, run_id, after_seq)
        return verified(run_id, rows, self._url)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._fetch(ops.SELECT_RUN, run_id)
        return ops.row_to_run(rows[0]) if rows else None

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        where: list[str] = []
        params: list[object] = []
        if query.status is not None:
            params.append(query.status)
            where.append(f"status = ${len(params)}")
        if query.workflow is not None:
            params.append(query.workflow)
            where.append(f"workflow = ${len(params)}")
        if query.before is not None:
            params += [query.before[0], query.before[1]]
            where.append(f"(created_at, run_id) < (${len(params) - 1}, ${len(params)})")
        sql = f"SELECT {ops.RUN_COLUMNS} FROM durable_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        params.append(query.limit)
        sql += f" ORDER BY created_at DESC, run_id DESC LIMIT ${len(params)}"
        return [ops.row_to_run(r) for r in await self._fetch(sql, *params)]

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        pool = self._p()
        try:
            return list(await pool.fetch(sql, *args))
        except Exception as exc:
            raise self._translate(exc, "read") from None

    async def _fetchval(self, sql: str, *args: object) -> Any:
        pool = self._p()
        try:
            return await pool.fetchval(sql, *args)
        except Exception as exc:
            raise self._translate(exc, "read") from None

    # ------------------------------------------------------------------------ definitions

    async def put_definition(self, record: DefinitionRecord) -> tuple[DefinitionRecord, bool]:
        # Outside the writer, on a pooled connection, in autocommit: the insert is atomic on its
        # own (a concurrent put of the same key waits for it, then inserts nothing), and the
        # read after it, a statement of its own, sees whichever insert won. Definitions are
        # never deleted, so the row is there (the loop only guards against a hand-made DELETE).
        args = ops.definition_args(record)
        for _ in range(3):
            if await self._execute("put_definition", ops.INSERT_DEFINITION, *args):
                return record, True
            stored = await self.get_definition(record.name, record.version)
            if stored is not None:
                return already_stored(stored, record), False
        raise DatabaseUnavailableError(
            f"PostgreSQL put_definition on {self._url} failed: definition {record.name!r} "
            f"version {record.version!r} was deleted while it was put"
        )

    async def get_definition(self, name: str, version: str) -> DefinitionRecord | None:
        rows = await self._fetch(ops.SELECT_DEFINITION, name, version)
        return ops.row_to_definition(rows[0]) if rows else None

    async def list_definitions(self, name: str | None = None) -> list[DefinitionRecord]:
        if name is None:
            rows = await self._fetch(ops.LIST_DEFINITIONS)
        else:
            rows = await self._fetch(ops.LIST_DEFINITIONS_NAMED, name)
        return [ops.row_to_definition(r) for r in rows]

    async def count_definitions(self) -> int:
        count: int = await self._fetchval(ops.COUNT_DEFINITIONS)
        return count

    # ------------------------------------------------------------------------ LISTEN/NOTIFY

    async def wait_for_work(self, timeout: float) -> bool:
        """Sleep until another process (or this one) makes a run claimable, or `timeout`
        seconds pass; True if woken by a notification. The first call starts listening and
        returns True at once, since work may have arrived before.

        Listening holds one connection of the pool for as long as the store is open; a pool of
        one connection cannot spare it, so there this only sleeps (the caller's poll)."""
        self._p()
        assert self._listen is not None
        return await self._listen.wait_for_work(timeout)

    def on_run_change(self, callback: Callable[[str], None]) -> None:
        """Call `callback(run_id)` (in the event loop) whenever a commit of any process
        announces that run: an inbox item sent to it, its end or another status change, an
        append with a projection (storage._postgres_writer.announced). Listening starts at
        the first listen_runs() (or wait_for_work()); until then nothing is called."""
        self._run_callbacks.append(callback)
        if self._listen is not None:
            self._listen.on_run_change(callback)

    async def listen_runs(self) -> bool:
        """Start listening for run changes (once; again after the connection died). False
        when this store cannot (a pool of one connection): its waiters poll."""
        self._p()
        assert self._listen is not None
        return await self._listen.listen_runs()

    @property
    def _listener(self) -> Any:
        """The listening connection (None until something listens)."""
        return None if self._listen is None else self._listen.conn

    # ------------------------------------------------------------------------ errors

    def _translate(self, exc: BaseException, during: str) -> BaseException:
        return translate(exc, self._url, during)

    # ------------------------------------------------------------------------ schedules

    async def put_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        # Single statements on a pooled connection: ON CONFLICT makes concurrent declarations
        # of one schedule safe, and the row is read back after.
        await self._execute("put_schedule", sched.PG_UPSERT, *sched.insert_args(record))
        stored = await self.get_schedule(record.name)
        assert stored is not None  # rows are never deleted
        return stored

    async def get_schedule(self, name: str) -> ScheduleRecord | None:
        rows = await self._fetch(sched.PG_SELECT, name)
        return sched.row_to_schedule(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [sched.row_to_schedule(r) for r in await self._fetch(sched.PG_LIST)]

    async def update_schedule(self, record: ScheduleRecord, expected_revision: int) -> bool:
        args = sched.update_args(record, expected_revision)
        won: object = await self._execute("update_schedule", sched.PG_UPDATE, *args)
        return won == 1

    # ------------------------------------------------------------------------ queues

    async def put_queue(self, record: QueueRecord) -> None:
        await self._execute("put_queue", pgqueues.PG_UPSERT, *queue_args(record))

    async def get_queue(self, name: str) -> QueueRecord | None:
        rows = await self._fetch(pgqueues.PG_GET, name)
        return row_to_queue(tuple(rows[0])) if rows else None

    async def list_queues(self) -> list[QueueRecord]:
        return [row_to_queue(tuple(r)) for r in await self._fetch(pgqueues.PG_LIST)]

    async def next_admission(self, *, now: float) -> float | None:
        found = await self._fetchval(pgqueues.PG_NEXT_ADMISSION, now)
        return None if found is None else float(found)

    async def queue_stats(self, name: str, *, now: float) -> QueueStats:
        queue = await self.get_queue(name)
        window = now - (queue.rate_period or 0.0) if queue is not None else now
        row = (await self._fetch(pgqueues.PG_STATS, window, name))[0]
        return QueueStats(name, row[0], row[1], row[2], row[3])

    async def run_queue(self, run_id: str) -> RunQueue | None:
        rows = await self._fetch(pgqueues.PG_RUN_QUEUE, run_id)
        if not rows:
            return None
        queue, priority, part, dedupe, admitted, ready, created = tuple(rows[0])
        ahead = 0
        if admitted is None:
            found = await self._fetch(pgqueues.PG_AHEAD, queue, priority, ready, created, run_id)
            ahead = found[0][0]
        return RunQueue(queue, priority, part, dedupe, admitted, ahead)

    async def queue_runs(self, name: str, *, waiting: bool, limit: int) -> list[QueuedRun]:
        sql = QUEUE_RUNS.format("$1", "$2", "" if waiting else "NOT")
        return [QueuedRun(*tuple(row)) for row in await self._fetch(sql, name, limit)]


def _add_query(url: str, extra: str) -> str:
    return url + ("&" if "?" in url else "?") + extra if extra else url


async def _nothing(conn: Any) -> None:
    """The op of notify_work: the notification is the whole point."""
