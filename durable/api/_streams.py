"""/executions/{id}/streams: the values a run writes with ctx.write_stream and
durable.write_stream, as a JSON page or a live Server-Sent Events stream (read token).

SSE: one message per value (`id` its offset, `event: value`, `data` the value as JSON), then
`event: end` with `{"reason": "closed"}` or `{"reason": "run ended"}`. A client that lost the
connection reconnects with `Last-Event-ID` (what EventSource does by itself), which wins over
`?after=`: it gets each value once, in order. A `: keepalive` comment every KEEPALIVE seconds
keeps proxies from closing a quiet stream. A stopping server ends the stream without `end`
(the client reconnects elsewhere)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from durable._codec import decode_value
from durable.interact._streams import follow
from durable.runtime._streams import MAX_KEY_LENGTH
from storage import StreamRecord

from ._executions import RunId, _until
from ._responses import errors
from ._schemas import Api
from ._services import Services

# Seconds between keepalive comments on a quiet SSE stream.
KEEPALIVE = 15.0
_MAX_OFFSET = 2**31

StreamKeyParam = Parameter(
    min_length=1,
    max_length=MAX_KEY_LENGTH,
    pattern=r"^[^\x00]+$",
    description="The stream's key (as given to write_stream).",
)


class StreamInfo(Api):
    key: str
    count: int
    closed: bool


class StreamList(Api):
    streams: list[StreamInfo]


class StreamValue(Api):
    offset: int
    value: Any


class StreamPage(Api):
    items: list[StreamValue]
    closed: bool
    # Pass as ?after= for the next page (the offset of the last item, or `after` if none).
    next_after: int


async def _known(services: Services, run_id: str) -> None:
    if await services.client.store.get_run(run_id) is None:
        raise NotFoundException(f"no execution with id {run_id!r}")


@get(
    "/executions/{run_id:str}/streams",
    summary="An execution's streams: keys, how many values, closed or not",
    responses=errors(404),
)
async def list_streams(services: Services, run_id: str = RunId) -> StreamList:
    await _known(services, run_id)
    keys = await services.client.stream_keys(run_id)
    return StreamList(streams=[StreamInfo(key=k.key, count=k.count, closed=k.closed) for k in keys])


@get(
    "/executions/{run_id:str}/streams/{key:str}",
    summary="A stream's values (JSON page, or a live text/event-stream)",
    responses=errors(404),
)
async def read_stream(
    request: Request[Any, Any, Any],
    services: Services,
    run_id: str = RunId,
    key: str = StreamKeyParam,
    after: int = Parameter(query="after", default=0, ge=0, le=_MAX_OFFSET),
    limit: int = Parameter(query="limit", default=100, ge=1, le=1000),
) -> Response[Any]:
    """The values after offset `after` (values are numbered 1, 2, 3... per key). With
    `Accept: text/event-stream`: live, from `Last-Event-ID` if the client sends one, ending with
    an `end` event once the stream is closed or the run has ended."""
    await _known(services, run_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        resume = request.headers.get("last-event-id")
        if resume is not None:
            after = _last_event_id(resume)
        return ServerSentEvent(_keepalive(_sse(services, run_id, key, after)))
    # One row more than a page: the close marker right after a full page's last value.
    rows = await services.client.store.read_stream(run_id, key, after, limit=limit + 1)
    values = [StreamValue(offset=r.offset, value=_value(r)) for r in rows if not r.closed]
    values = values[:limit]
    closed = bool(rows) and rows[-1].closed
    next_after = values[-1].offset if values else after
    return Response(StreamPage(items=values, closed=closed, next_after=next_after))


def _last_event_id(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= _MAX_OFFSET:
        raise ValidationException(
            f"Last-Event-ID {text[:40]!r}: must be the offset of the last value received "
            "(a whole number >= 0), as sent in the stream's `id:` lines"
        )
    return value


def _value(row: StreamRecord) -> Any:
    assert row.value is not None
    return decode_value(row.value)


async def _sse(services: Services, run_id: str, key: str, after: int) -> AsyncIterator[Any]:
    ended: list[str] = []  # why the stream ended, once it has (not when the server stops)

    async def rows() -> AsyncIterator[StreamRecord]:
        async for row in follow(services.client, run_id, key, after):
            if row.closed:
                ended.append("closed")
                return
            yield row
        ended.append("run ended")

    async for row in _until(services.stopping, rows()):
        data = msgspec.json.encode(_value(row)).decode()
        yield ServerSentEventMessage(data=data, event="value", id=row.offset)
    if ended:  # else the server is stopping: no end, the client reconnects and goes on
        body = msgspec.json.encode({"reason": ended[0]}).decode()
        yield ServerSentEventMessage(data=body, event="end")


async def _keepalive(source: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`source`'s messages, with a comment line whenever it is quiet for KEEPALIVE seconds."""
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            if step is None:
                step = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({step}, timeout=KEEPALIVE)
            if not done:
                yield ServerSentEventMessage(comment="keepalive")
                continue
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            step = None
            yield item
    finally:
        if step is not None and not step.done():
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await step
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
