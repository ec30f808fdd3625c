"""Reading a run's stream live: app.read_stream(), Client.read_stream(), the HTTP endpoint and
`durable runs stream` all follow it through follow().

A reader subscribes to the run's in-process notifications, then reads (subscribing first: a
write between the read and the wait still wakes it), yields what it found, and when a read finds
nothing waits for a notification or a backoff of at most client.poll_interval (writes made by
another process are seen by polling). It stops after the close marker, or once the run has ended
and everything is read: a run's rows are all committed before its final status is, so one last
read after seeing the run ended finds every value it will ever have.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from durable._codec import decode_value
from durable._errors import RunNotFoundError
from durable._ids import check_lookup
from durable.runtime._streams import check_key
from storage import FINAL_STATUSES, StreamRecord

if TYPE_CHECKING:
    from durable._client import Client

_FIRST_DELAY = 0.02


class StreamItem(msgspec.Struct, frozen=True):
    """A stream value with its offset (1, 2, 3... per key): resume after it with after=offset."""

    offset: int
    value: Any


def check_after(after: object) -> int:
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise ValueError(f"after={after!r}: must be an offset, a whole number >= 0")
    return after


async def follow(
    client: Client, run_id: str, key: str, after: int = 0
) -> AsyncIterator[StreamRecord]:
    """The rows of stream `key` after offset `after`, live: values, then the close marker (a row
    with closed=True) if the stream is closed; ends there or once the run has ended."""
    check_lookup("run id", run_id)
    check_key(key)
    after = check_after(after)
    store = client.store
    delay = _FIRST_DELAY
    with client.notifier.subscribe(run_id) as changed:
        while True:
            changed.clear()  # before reading: a change after the read still wakes us
            rows = await store.read_stream(run_id, key, after)
            for row in rows:
                yield row
                if row.closed:
                    return
                after = row.offset
            if rows:
                delay = _FIRST_DELAY
                continue
            run = await store.get_run(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if run.status in FINAL_STATUSES:
                # Every row was committed before the final status: this read finds the rest.
                while rows := await store.read_stream(run_id, key, after):
                    for row in rows:
                        yield row
                        if row.closed:
                            return
                        after = row.offset
                return
            try:
                await asyncio.wait_for(changed.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, client.poll_interval)


async def stream_items(
    client: Client, run_id: str, key: str, *, after: int = 0, type: Any = Any
) -> AsyncIterator[StreamItem]:
    async for row in follow(client, run_id, key, after):
        if row.closed:
            return
        assert row.value is not None
        yield StreamItem(row.offset, decode_value(row.value, type))


async def read_stream(
    client: Client, run_id: str, key: str, *, after: int = 0, type: Any = Any
) -> AsyncIterator[Any]:
    async for item in stream_items(client, run_id, key, after=after, type=type):
        yield item.value
