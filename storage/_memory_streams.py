"""Streams in the memory store: the same rules as storage._streams_ops's SQL (a producer once
per key, dense offsets from 1, nothing after the close marker, a fenced step write)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from storage._errors import RunNotFoundError
from storage._records import Fence, RunRecord, StreamRecord, StreamRow
from storage._streams_ops import StreamClosedError, StreamKey, check_fence


class StreamTable:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list[StreamRecord]] = {}
        self.producers: dict[tuple[str, str], dict[str, bool]] = {}  # producer -> closed

    def insert(self, run_id: str, row: StreamRow) -> bool:
        """Add a row; False if it was not (its producer is stored, or the stream is closed)."""
        at = (run_id, row.key)
        rows = self.rows.setdefault(at, [])
        producers = self.producers.setdefault(at, {})
        if row.producer in producers or (rows and rows[-1].closed):
            return False
        rows.append(StreamRecord(len(rows) + 1, row.value, row.closed, row.created_at))
        producers[row.producer] = row.closed
        return True

    def project(self, run_id: str, rows: Sequence[StreamRow]) -> None:
        for row in rows:
            self.insert(run_id, row)

    def write(self, run_id: str, rows: Sequence[StreamRow]) -> None:
        # Check first: a refused write changes nothing.
        closed = {k for (r, k), rs in self.rows.items() if r == run_id and rs and rs[-1].closed}
        seen: set[tuple[str, str]] = set()
        for row in rows:
            known = row.producer in self.producers.get((run_id, row.key), {})
            if not known and (row.key, row.producer) not in seen and row.key in closed:
                raise StreamClosedError(run_id, row.key)
            seen.add((row.key, row.producer))
            if row.closed:
                closed.add(row.key)
        for row in rows:
            self.insert(run_id, row)

    def drop(self, run_ids: Collection[str]) -> None:
        for at in [at for at in self.rows if at[0] in run_ids]:
            del self.rows[at]
            self.producers.pop(at, None)


class MemoryStreams:
    """MemoryStore's stream operations (a mixin)."""

    _streams: StreamTable

    if TYPE_CHECKING:
        _runs: dict[str, RunRecord]

        def _check_open(self) -> None: ...

    def write_stream(
        self, run_id: str, fence: Fence, rows: Sequence[StreamRow]
    ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._check_open()
            run = self._runs.get(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            check_fence(run_id, fence, (run.owner, run.epoch))
            self._streams.write(run_id, rows)
            fut.set_result(None)
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    async def read_stream(
        self, run_id: str, key: str, after: int = 0, *, limit: int = 500
    ) -> list[StreamRecord]:
        self._check_open()
        rows = self._streams.rows.get((run_id, key), [])
        return rows[max(after, 0) : max(after, 0) + max(limit, 0)]

    async def stream_keys(self, run_id: str) -> list[StreamKey]:
        self._check_open()
        found = []
        for (rid, key), rows in sorted(self._streams.rows.items()):
            if rid == run_id and rows:
                closed = rows[-1].closed
                found.append(StreamKey(key, len(rows) - int(closed), closed))
        return found

    async def stream_progress(self, run_id: str, producer_prefix: str) -> dict[str, int]:
        self._check_open()
        counts: dict[str, int] = {}
        for (rid, key), producers in self._streams.producers.items():
            if rid != run_id:
                continue
            n = sum(1 for p, c in producers.items() if p.startswith(producer_prefix) and not c)
            if n:
                counts[key] = n
        return counts
