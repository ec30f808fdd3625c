"""The stream operations every store has (Store inherits them); storage._streams_ops says
how values are made exactly-once and their offsets dense."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from storage._records import Fence, StreamRecord, StreamRow
from storage._streams_ops import StreamKey


class StreamStore(Protocol):
    def write_stream(
        self, run_id: str, fence: Fence, rows: Sequence[StreamRow]
    ) -> asyncio.Future[None]:
        """Add a step body's rows to the run's streams, in order, if `fence` still holds the
        run's lease (else LeaseLostError, nothing written). A row whose (key, producer) is
        stored is skipped; a new row for a closed key fails the write with StreamClosedError,
        having written none of `rows`."""
        ...

    async def read_stream(
        self, run_id: str, key: str, after: int = 0, *, limit: int = 500
    ) -> list[StreamRecord]:
        """The rows of stream `key` with offsets above `after`, in order, at most `limit`; the
        close marker is the last row of a closed stream."""
        ...

    async def stream_keys(self, run_id: str) -> list[StreamKey]:
        """The run's streams, by key: how many values each holds, whether it is closed."""
        ...

    async def stream_progress(self, run_id: str, producer_prefix: str) -> dict[str, int]:
        """Per key, how many values producers starting with `producer_prefix` wrote."""
        ...
