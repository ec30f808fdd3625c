"""Streams on PostgreSQL (storage._streams_ops says how exactly-once and the offsets work).

A step body's write goes through the store's writer like an append: it locks the run's row
(FOR UPDATE, until the batch commits) and checks the fence on it, so a worker that lost the
lease writes nothing, and no other process can append to the run until this batch commits.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from storage._records import Fence, StreamRecord, StreamRow
from storage._sql_text import numbered
from storage._streams_ops import (
    KEYS,
    PRODUCER_STORED,
    PROGRESS,
    READ,
    StreamClosedError,
    StreamKey,
    check_fence,
    progress_pattern,
    to_keys,
    to_record,
)

if TYPE_CHECKING:
    from storage._postgres_writer import PostgresWriter

# The shared INSERT with types PostgreSQL cannot infer from a SELECT list; RETURNING tells
# whether the row went in.
_INSERT = (
    "INSERT INTO durable_streams (run_id, key, seq, producer, value, closed, created_at) "
    "SELECT $1::text, $2::text, COALESCE(MAX(seq), 0) + 1, $3::text, $4::bytea, $5::int4, "
    "$6::float8 FROM durable_streams WHERE run_id = $1 AND key = $2 "
    "HAVING COALESCE(MAX(closed), 0) = 0 "
    "ON CONFLICT (run_id, key, producer) DO NOTHING RETURNING seq"
)
_LOCK_RUN = "SELECT owner, epoch FROM durable_runs WHERE run_id = $1 FOR UPDATE"
_PRODUCER_STORED = numbered(PRODUCER_STORED)
_READ = numbered(READ)
_KEYS = numbered(KEYS)
_PROGRESS = numbered(PROGRESS)


def _args(run_id: str, row: StreamRow) -> tuple[object, ...]:
    return (run_id, row.key, row.producer, row.value, int(row.closed), row.created_at)


async def project(conn: Any, run_id: str, rows: Sequence[StreamRow]) -> None:
    """An append's rows (workflow code's writes), in the append's transaction."""
    await conn.executemany(_INSERT, [_args(run_id, r) for r in rows])


async def write(conn: Any, run_id: str, fence: Fence, rows: Sequence[StreamRow]) -> None:
    found = await conn.fetchrow(_LOCK_RUN, run_id)
    check_fence(run_id, fence, None if found is None else (found[0], found[1]))
    # A savepoint: a refused write changes nothing, though its batch commits.
    async with conn.transaction():
        for row in rows:
            if await conn.fetchval(_INSERT, *_args(run_id, row)) is None and not (
                await conn.fetchval(_PRODUCER_STORED, run_id, row.key, row.producer)
            ):
                raise StreamClosedError(run_id, row.key)


class PostgresStreams:
    """PostgresStore's stream operations (a mixin: the store stays one class, this code apart)."""

    if TYPE_CHECKING:

        def _w(self) -> PostgresWriter: ...

        async def _fetch(self, sql: str, *args: object) -> list[Any]: ...

    def write_stream(
        self, run_id: str, fence: Fence, rows: Sequence[StreamRow]
    ) -> asyncio.Future[None]:
        op = functools.partial(write, run_id=run_id, fence=fence, rows=tuple(rows))
        return self._w().submit(op)

    async def read_stream(
        self, run_id: str, key: str, after: int = 0, *, limit: int = 500
    ) -> list[StreamRecord]:
        return [to_record(tuple(r)) for r in await self._fetch(_READ, run_id, key, after, limit)]

    async def stream_keys(self, run_id: str) -> list[StreamKey]:
        return to_keys([tuple(r) for r in await self._fetch(_KEYS, run_id)])

    async def stream_progress(self, run_id: str, producer_prefix: str) -> dict[str, int]:
        rows = await self._fetch(_PROGRESS, run_id, progress_pattern(producer_prefix))
        return {str(r[0]): int(r[1]) for r in rows}
