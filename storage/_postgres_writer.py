"""The writer of a PostgreSQL store, and its group commit.

Every write of the store (create_run, append, claim, renew, release) is queued here and applied
by one task, in the order it was made. While one batch is in its transaction, the writes made
meanwhile (by every run of the process) queue up and become the next batch: one transaction,
one commit (one WAL flush) for all of them. A lone sequential run pays one commit per write; a
thousand runs in flight share theirs.

The writer borrows a connection from the store's pool for each batch, so it counts against
the pool's size like any reader, and a small pool (even of one) cannot deadlock it.

A write that the store refuses (expected seq, fence, unknown run) changes nothing and fails
alone. A batch that fails for another reason (a deadlock with another process's batch, a
constraint) is rolled back and its writes applied one by one, so one bad write cannot fail the
others. A lost connection fails the whole batch with DatabaseUnavailableError: whether its
commit happened is unknown, and the callers' optimistic checks sort that out on their retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from storage._errors import StorageError, StoreClosedError
from storage._outcomes import Outcome, resolve
from storage._postgres_ops import append_many
from storage._records import Append

log = logging.getLogger("durable.storage.postgres")

Op = Callable[[Any], Awaitable[Any]]  # run with the batch's connection, inside its transaction
# (an op or an append, its future, notify workers after commit, the run ids to announce on the
# changes channel at commit). Appends are data, not ops, so that the writer can apply the
# consecutive ones of a batch together.
_Item = tuple[Op | Append, "asyncio.Future[Any]", bool, tuple[str, ...]]
_Outcome = Outcome

# A batch bigger than this is split: a huge transaction delays every waiter in it.
_MAX_BATCH = 2000
# A deadlock or serialization failure of a single write is retried this many times.
_RETRIES = 3

Translate = Callable[[BaseException, str], BaseException]


class PostgresWriter:
    def __init__(
        self, pool: Any, *, channel: str, changes: str, translate: Translate, where: str
    ) -> None:
        self._pool = pool
        self._channel = channel
        self._changes = changes
        self._translate = translate
        self._where = where
        self._pending: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Counters for benchmarks and tests: how well group commit is batching.
        self.commits = 0
        self.writes = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="durable-postgres-writer")

    def submit(
        self, op: Op | Append, *, notify: bool = False, announce: tuple[str, ...] = ()
    ) -> asyncio.Future[Any]:
        """Queue a write. `notify`: wake idle workers at commit (work channel). `announce`: run
        ids for the changes channel at commit (an append's are derived by announced())."""
        if self._task is None or self._closed:
            raise StoreClosedError(f"PostgreSQL store {self._where} is not open")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if isinstance(op, Append):
            announce = announced(op)
        self._pending.append((op, fut, notify, announce))
        self._wakeup.set()
        return fut

    async def stop(self) -> None:
        """Apply everything already queued, then stop."""
        task = self._task
        if task is None or self._closed:
            return
        self._closed = True
        self._wakeup.set()
        await task
        self._task = None

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[:_MAX_BATCH]
                del self._pending[:_MAX_BATCH]
                try:
                    outcomes = await self._apply(batch)
                except Exception as exc:  # never let the writer die with futures waiting
                    log.exception("PostgreSQL writer failed")
                    error = self._translate(exc, "write")
                    outcomes = [(fut, False, error) for _, fut, _, _ in batch]
                resolve(outcomes)
            if self._closed:
                return

    async def _apply(self, batch: list[_Item]) -> list[_Outcome]:
        """Apply a batch in one transaction; the outcome of each write, in order."""
        try:
            async with self._pool.acquire() as conn:
                try:
                    return await self._transaction(conn, batch)
                except Exception as exc:
                    if _connection_lost(exc, conn):
                        raise
                    if len(batch) == 1:
                        return [await self._alone(conn, batch[0], exc)]
                    log.warning(
                        "batch of %d writes failed (%s); applying them one by one", len(batch), exc
                    )
                    return [await self._alone(conn, item, None) for item in batch]
        except Exception as exc:  # the connection or the pool failed: the whole batch did
            error = self._translate(exc, "write")
            return [(fut, False, error) for _, fut, _, _ in batch]

    async def _transaction(self, conn: Any, batch: list[_Item]) -> list[_Outcome]:
        if _one_statement(batch):
            return await self._statement(conn, batch)
        outcomes: list[_Outcome] = []
        notify = False
        runs: list[str] = []  # to announce
        async with conn.transaction():
            i = 0
            while i < len(batch):
                op, fut, wake, announce = batch[i]
                if isinstance(op, Append):
                    # Consecutive appends (the bulk of any batch) go as one statement per round.
                    j = i
                    while j < len(batch) and isinstance(batch[j][0], Append):
                        j += 1
                    group = batch[i:j]
                    apps = [item[0] for item in group if isinstance(item[0], Append)]
                    refusals = await append_many(conn, apps)
                    for (_, f, sends, ids), refusal in zip(group, refusals, strict=True):
                        outcomes.append((f, False, refusal) if refusal else (f, True, None))
                        notify = notify or (sends and refusal is None)
                        if refusal is None:
                            runs += ids
                    i = j
                    continue
                try:
                    outcomes.append((fut, True, await op(conn)))
                    notify = notify or wake
                    runs += announce
                except StorageError as exc:
                    outcomes.append((fut, False, exc))
                i += 1
            if notify:
                # Delivered at commit, to every LISTENing worker: there is work to claim.
                await conn.execute("SELECT pg_notify($1, '')", self._channel)
            if runs:
                # To whoever waits on these runs (any process), at commit; PostgreSQL folds
                # the duplicates of one transaction.
                await conn.execute(
                    "SELECT pg_notify($1, r) FROM unnest($2::text[]) AS r",
                    self._changes,
                    list(dict.fromkeys(runs)),
                )
        self.commits += 1
        self.writes += len(batch)
        return outcomes

    async def _statement(self, conn: Any, batch: list[_Item]) -> list[_Outcome]:
        """A batch that is one statement runs without BEGIN/COMMIT: a single statement is
        atomic by itself, and the two extra round trips were most of a lone run's commit."""
        apps = [op for op, _, _, _ in batch if isinstance(op, Append)]
        refusals = await append_many(conn, apps)
        self.commits += 1
        self.writes += len(batch)
        return [
            (fut, False, refusal) if refusal else (fut, True, None)
            for (_, fut, _, _), refusal in zip(batch, refusals, strict=True)
        ]

    async def _alone(self, conn: Any, item: _Item, first: Exception | None) -> _Outcome:
        """One write in its own transaction (after its batch failed), retrying transient
        conflicts with other processes' transactions (deadlock, serialization)."""
        _, fut, _, _ = item
        error = first
        for _attempt in range(_RETRIES):
            if error is not None and not isinstance(error, asyncpg.TransactionRollbackError):
                break
            try:
                return (await self._transaction(conn, [item]))[0]
            except Exception as exc:
                if _connection_lost(exc, conn):
                    raise
                error = exc
        assert error is not None
        return (fut, False, self._translate(error, "write"))


def _one_statement(batch: list[_Item]) -> bool:
    """Only appends, each to a different run, touching no inbox and announcing nothing:
    append_many writes them all in one statement."""
    runs: set[str] = set()
    for op, _, wake, announce in batch:
        if (
            not isinstance(op, Append)
            or wake
            or announce
            or op.run_id in runs
            or op.consume
            or op.send
            or op.completions
            or op.stream
        ):
            return False
        if op.values:  # upserted beside the round (append_many): a transaction
            return False
        if op.updates:  # update rows change in the batch's transaction (storage._updates_pg)
            return False
        runs.add(op.run_id)
    return True


def announced(app: Append) -> tuple[str, ...]:
    """The run ids an append announces on the changes channel when it commits. The one rule
    of what is worth a notification (the hot path, a step's result, is not): items sent to
    runs, and a change of the run's status (its end, above all).

    Issue 17's projections (values, stream rows, requests, history) announce their run here
    too: add the new Append field to `_ANNOUNCING` below."""
    ids = [item.run_id for item in app.send]
    if (app.update is not None and app.update.status is not None) or any(
        getattr(app, name, None) for name in _ANNOUNCING
    ):
        ids.append(app.run_id)
    return tuple(dict.fromkeys(ids))


# Append fields whose presence makes an append announce its run (see announced()).
_ANNOUNCING: tuple[str, ...] = ("values", "stream", "requests", "history", "completions")


def is_dead(conn: Any) -> bool:
    """Closed, or a pool proxy already detached from its connection (asking a detached proxy
    anything, is_closed() included, raises InterfaceError)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


def _connection_lost(exc: BaseException, conn: Any) -> bool:
    """The connection (or the server) is gone: nothing more can be done on it."""
    return is_dead(conn) or isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.exceptions.OperatorInterventionError
        | asyncpg.exceptions.InsufficientResourcesError
        # What asyncpg raises when the server's goodbye arrives while a query starts.
        | asyncpg.exceptions.InternalClientError,
    )


async def no_reset(conn: Any) -> None:
    """The pool's reset hook. asyncpg already rolls back an open transaction on release; its
    default reset query (RESET ALL, UNLISTEN *, ...) would cost a round trip per release, and
    the store leaves no session state behind (the listener connection UNLISTENs itself)."""
