"""Streams (durable_streams): the SQL shared by both SQL backends, the SQLite side of it, and
the records and error of the stream operations.

How a value is written exactly once: every row names its producer (w<pos> for workflow code,
s<pos>.<i> for a step call's i-th write to the key), unique per (run, key). A row whose producer is
already stored is dropped (ON CONFLICT DO NOTHING), so a retried step that emits the same
values again adds nothing until it passes what its earlier attempt wrote. Offsets are dense
per (run, key): each insert takes MAX + 1 inside the writer's transaction, and one process at a
time writes a run's rows (the lease holder; the fence check refuses anyone else).

A row for a key already closed is not inserted (the HAVING clause); a step's write then fails
with StreamClosedError, unless its producer was already stored (a retry re-closing or
re-writing what its first attempt did is not an error).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from storage._errors import LeaseLostError, RunNotFoundError, StorageError
from storage._records import Fence, StreamRecord, StreamRow

if TYPE_CHECKING:
    from storage._sqlite_writer import SQLiteWriter


class StreamClosedError(StorageError):
    """A value was written to a stream that is already closed."""

    def __init__(self, run_id: str, key: str) -> None:
        super().__init__(
            f"run {run_id!r}: stream {key!r} is closed; nothing can be written to it after "
            "close_stream (write every value first, or use another key)"
        )
        self.run_id = run_id
        self.key = key


class StreamKey(msgspec.Struct, frozen=True):
    """A stream of a run: its key, how many values it holds, whether it is closed."""

    key: str
    count: int
    closed: bool


# `?` placeholders; the run id and key appear twice (the row, then the MAX's WHERE).
INSERT_ROW = (
    "INSERT INTO durable_streams (run_id, key, seq, producer, value, closed, created_at) "
    "SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM durable_streams "
    "WHERE run_id = ? AND key = ? HAVING COALESCE(MAX(closed), 0) = 0 "
    "ON CONFLICT (run_id, key, producer) DO NOTHING"
)
PRODUCER_STORED = "SELECT 1 FROM durable_streams WHERE run_id = ? AND key = ? AND producer = ?"
READ = (
    "SELECT seq, value, closed, created_at FROM durable_streams "
    "WHERE run_id = ? AND key = ? AND seq > ? ORDER BY seq LIMIT ?"
)
KEYS = (
    "SELECT key, MAX(seq), MAX(closed) FROM durable_streams WHERE run_id = ? "
    "GROUP BY key ORDER BY key"
)
# Values (not close markers) written by producers starting with a prefix (a step call's).
PROGRESS = (
    "SELECT key, COUNT(*) FROM durable_streams WHERE run_id = ? AND producer LIKE ? "
    "AND closed = 0 GROUP BY key"
)
_RUN_FENCE = "SELECT owner, epoch FROM durable_runs WHERE run_id = ?"


def insert_args(run_id: str, row: StreamRow) -> tuple[object, ...]:
    return (
        run_id,
        row.key,
        row.producer,
        row.value,
        int(row.closed),
        row.created_at,
        run_id,
        row.key,
    )


def check_fence(run_id: str, fence: Fence, found: tuple[str | None, int] | None) -> None:
    if found is None:
        raise RunNotFoundError(run_id)
    owner, epoch = found
    if owner != fence.owner or epoch != fence.epoch:
        raise LeaseLostError(run_id, fence.owner, fence.epoch, owner, epoch)


def to_record(row: Sequence[object]) -> StreamRecord:
    seq, value, closed, created_at = row
    return StreamRecord(int(seq), value, bool(closed), float(created_at))  # type: ignore[arg-type, call-overload]


def to_keys(rows: Sequence[Sequence[object]]) -> list[StreamKey]:
    keys = []
    for key, last, closed in rows:
        done = bool(closed)
        keys.append(StreamKey(str(key), int(last) - int(done), done))  # type: ignore[call-overload]
    return keys


def progress_pattern(producer_prefix: str) -> str:
    # Producer prefixes are made of letters, digits and dots: no LIKE wildcard to escape.
    return producer_prefix + "%"


# ------------------------------------------------------------------------------------ SQLite


def sqlite_project(cur: sqlite3.Cursor, run_id: str, rows: Sequence[StreamRow]) -> None:
    """An append's rows (workflow code's writes), in the append's transaction: a duplicate or a
    write after close adds nothing."""
    cur.executemany(INSERT_ROW, [insert_args(run_id, r) for r in rows])


def sqlite_write(cur: sqlite3.Cursor, run_id: str, fence: Fence, rows: Sequence[StreamRow]) -> None:
    """A step body's rows, fenced by the run's lease (the writer's BEGIN IMMEDIATE holds the
    write lock, so the check holds until commit)."""
    check_fence(run_id, fence, cur.execute(_RUN_FENCE, (run_id,)).fetchone())
    # A refused write changes nothing (the writer commits the rest of its batch): the rows
    # before a refused one are undone with it.
    cur.execute("SAVEPOINT stream_write")
    try:
        for row in rows:
            cur.execute(INSERT_ROW, insert_args(run_id, row))
            if (
                cur.rowcount == 0
                and not cur.execute(PRODUCER_STORED, (run_id, row.key, row.producer)).fetchone()
            ):
                raise StreamClosedError(run_id, row.key)
    except BaseException:
        cur.execute("ROLLBACK TO stream_write")
        raise
    finally:
        cur.execute("RELEASE stream_write")


class SQLiteStreams:
    """SQLiteStore's stream operations (a mixin: the store stays one class, this code apart)."""

    if TYPE_CHECKING:

        def _w(self) -> SQLiteWriter: ...

        async def _read(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]: ...

    def write_stream(
        self, run_id: str, fence: Fence, rows: Sequence[StreamRow]
    ) -> asyncio.Future[None]:
        op = functools.partial(sqlite_write, run_id=run_id, fence=fence, rows=tuple(rows))
        return self._w().submit(op)

    async def read_stream(
        self, run_id: str, key: str, after: int = 0, *, limit: int = 500
    ) -> list[StreamRecord]:
        return [to_record(r) for r in await self._read(READ, (run_id, key, after, limit))]

    async def stream_keys(self, run_id: str) -> list[StreamKey]:
        return to_keys(await self._read(KEYS, (run_id,)))

    async def stream_progress(self, run_id: str, producer_prefix: str) -> dict[str, int]:
        params = (run_id, progress_pattern(producer_prefix))
        return {str(k): int(n) for k, n in await self._read(PROGRESS, params)}
