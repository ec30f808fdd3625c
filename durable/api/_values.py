"""/executions/{id}/values (ctx.set_event) and /executions/{id}/queries/{name} (ctx.on_query).

The path says `values` because /executions/{id}/events is the event log. A query is a POST (it
carries arguments) that changes nothing: a read token may ask one (route opt `read`, see
_auth.guard); the JSON Content-Type the same-origin rules require of every POST keeps web pages
out. A query runs the app's code in this server (a replay of the run, then the handler), bounded
by QUERY_TIMEOUT; every failure is a 4xx with the reason, never a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.status_codes import (
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from durable._codec import decode_value
from durable._errors import (
    EventNotSetError,
    NonDeterminismError,
    QueryError,
    SerializationError,
    UnknownWorkflowError,
)
from durable._views import plain
from durable.interact._query import QUERY_TIMEOUT
from durable.interact._values import list_values, wait_value
from storage import RunValue

from ._responses import WITH_BODY, errors
from ._schemas import Api
from ._services import Services
from ._shapes import ms

T = TypeVar("T")
MAX_WAIT = 60.0  # seconds a GET may hold its connection for a value not set yet

RunId = Parameter(
    min_length=1, max_length=255, pattern=r"^[^\x00]+$", description="The execution (run) id."
)
Name = Parameter(min_length=1, max_length=255, pattern=r"^[^\x00]+$")


class ValueEntry(Api):
    key: str
    value: Any
    seq: int  # the ValueSet event's
    updated_at: int | None  # epoch ms


class ValueList(Api):
    values: dict[str, Any]  # key -> latest value
    entries: list[ValueEntry]  # the same, with seq and time, by key


class QueryRequest(Api, forbid_unknown_fields=True):
    args: Annotated[list[Any], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class QueryResult(Api):
    result: Any


def _entry(found: RunValue) -> ValueEntry:
    return ValueEntry(found.key, plain(decode_value(found.value)), found.seq, ms(found.updated_at))


@get(
    "/executions/{run_id:str}/values",
    summary="The values an execution set (ctx.set_event)",
    responses=errors(404),
)
async def list_execution_values(services: Services, run_id: str = RunId) -> ValueList:
    entries = [_entry(v) for v in await list_values(services.client, run_id)]
    return ValueList(values={e.key: e.value for e in entries}, entries=entries)


@get(
    "/executions/{run_id:str}/values/{key:str}",
    summary="One value an execution set, waiting up to `wait` seconds for it",
    responses=errors(404, 409),
)
async def get_execution_value(
    services: Services,
    run_id: str = RunId,
    key: str = Name,
    wait: float = Parameter(query="wait", default=0.0, ge=0, le=MAX_WAIT),
) -> ValueEntry:
    """404 if there is no such execution, or the value is not set after `wait` seconds
    (0: look once); 409 if the execution ended without setting it."""
    try:
        found = await _unless_stopping(
            services, wait_value(services.client, run_id, key, timeout=wait)
        )
    except TimeoutError as exc:
        raise ClientException(f"not set: {exc}", status_code=HTTP_404_NOT_FOUND) from None
    except EventNotSetError as exc:
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
    return _entry(found)


@post(
    "/executions/{run_id:str}/queries/{name:str}",
    summary="Ask an execution's query handler (ctx.on_query); a read token suffices",
    status_code=200,
    responses=errors(404, 409, 422, *WITH_BODY),
    opt={"read": True},
)
async def query_execution(
    services: Services, data: QueryRequest | None = None, run_id: str = RunId, name: str = Name
) -> QueryResult:
    """The run is replayed in this server (which must have the workflow's code) and the
    handler called with `args`; nothing is written. 422: no such handler, it issued a durable
    command or raised, or a DAG run; 409: this server lacks the workflow's code, or the code
    no longer replays the run."""
    args = data.args if data is not None else []
    try:
        result = await _unless_stopping(
            services, services.client.query(run_id, name, *args, timeout=QUERY_TIMEOUT)
        )
        return QueryResult(result=plain(result))
    except QueryError as exc:
        raise ClientException(str(exc), status_code=HTTP_422_UNPROCESSABLE_ENTITY) from None
    except SerializationError as exc:  # the handler's answer cannot be sent
        raise ClientException(str(exc), status_code=HTTP_422_UNPROCESSABLE_ENTITY) from None
    except (UnknownWorkflowError, NonDeterminismError) as exc:
        raise ClientException(
            f"this server cannot answer queries of run {run_id!r}: {exc}",
            status_code=HTTP_409_CONFLICT,
        ) from None


async def _unless_stopping(services: Services, work: Awaitable[T]) -> T:
    """`work`, unless the server stops first (a waiting GET must not hold up its shutdown)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(services.stopping.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        raise ClientException(
            "the server is stopping; ask again", status_code=HTTP_503_SERVICE_UNAVAILABLE
        )
    return task.result()
