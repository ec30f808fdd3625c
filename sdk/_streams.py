"""App's stream methods (a mixin of App, kept apart so that App stays small): reading the
values a run writes with ctx.write_stream / durable.write_stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from durable.interact._streams import StreamItem

if TYPE_CHECKING:
    from durable._engine import Engine
    from storage import StreamKey


class StreamMethods:
    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # App's

    def read_stream(
        self, run_id: str, key: str, *, after: int = 0, type: Any = Any
    ) -> AsyncIterator[Any]:
        """The values of the run's stream `key`, live, as they are written (`async for`):
        ends after the stream is closed, or once the run has ended and every value is read.
        `after=n` skips the first n values (resume where a reader stopped); `type` decodes each
        value into it (as wait_for_signal does)."""
        return self.engine.client.read_stream(run_id, key, after=after, type=type)

    def stream_items(
        self, run_id: str, key: str, *, after: int = 0, type: Any = Any
    ) -> AsyncIterator[StreamItem]:
        """read_stream() with each value's offset (StreamItem(offset, value)); offsets are
        1, 2, 3... per key, so `after=item.offset` resumes right after an item."""
        return self.engine.client.stream_items(run_id, key, after=after, type=type)

    async def stream_keys(self, run_id: str) -> list[StreamKey]:
        """The run's streams: key, how many values, closed or not."""
        return await self.engine.client.stream_keys(run_id)
