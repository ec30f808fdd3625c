"""/executions: start, list, inspect, visualize, cancel, signal, and the event log (JSON or a
live Server-Sent Events stream). Stateless: everything is read from and written to the
database, so any API process answers for any run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_201_CREATED,
    HTTP_202_ACCEPTED,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)

from durable._client import RUN_STATUSES
from durable._errors import (
    DuplicateRunError,
    InvalidIdError,
    InvalidInputError,
    RunIdConflictError,
)
from durable._events import ExternalStarted, decode_record
from durable._state import fold
from durable.interact._external import redact, secrets_of
from durable.queues._options import queue_start
from storage import RunQuery

from ._queues import run_place
from ._responses import WITH_BODY, errors
from ._schemas import (
    Accepted,
    CancelRequest,
    EventList,
    ExecutionDetail,
    ExecutionList,
    StartRequest,
    StartResponse,
    Visualization,
)
from ._services import Services, Stopping
from ._shapes import decode_cursor, detail, encode_cursor, event_body, summary, visualization

T = TypeVar("T")

# No NUL: PostgreSQL cannot even look one up (durable._ids.check_lookup says why in Python).
RunId = Parameter(
    min_length=1, max_length=255, pattern=r"^[^\x00]+$", description="The execution (run) id."
)


@post(
    "/executions/start",
    status_code=HTTP_201_CREATED,
    summary="Start an execution",
    responses=errors(404, 409, 422, *WITH_BODY),
)
async def start_execution(data: StartRequest, services: Services) -> Response[StartResponse]:
    """Start a run of `workflowId` (its newest version unless `version`) with `context` as
    its input. Idempotent on `executionId`: starting an existing id returns it (200)."""
    client = services.client
    record = None
    if data.execution_id is not None:
        record = await client.store.get_run(data.execution_id)
    if record is not None:
        # Client.start is idempotent too, but the API tells a repeat (200) from a start (201).
        if record.workflow != data.workflow_id:
            raise RunIdConflictError(
                f"execution id {data.execution_id!r} already names a run of workflow "
                f"{record.workflow!r}, not {data.workflow_id!r}"
            )
        return Response(StartResponse(execution_id=record.run_id), status_code=HTTP_200_OK)
    await services.find_workflow(data.workflow_id, data.version)
    try:
        queued = queue_start(
            services.registry.queues,
            data.queue,
            priority=data.priority,
            partition_key=data.partition_key,
            dedupe_key=data.dedupe_key,
            delay=data.delay,
        )
        handle = await client.start(
            data.workflow_id,
            data.context,
            run_id=data.execution_id,
            version=data.version,
            queued=queued,
        )
    except DuplicateRunError as exc:  # names the unfinished run holding the key
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
    except InvalidInputError as exc:  # the input does not fit the workflow's annotation
        raise ClientException(str(exc), status_code=HTTP_422_UNPROCESSABLE_ENTITY) from None
    except (TypeError, ValueError) as exc:  # e.g. a workflow that takes no input got some
        raise ValidationException(str(exc)) from None
    return Response(StartResponse(execution_id=handle.run_id), status_code=HTTP_201_CREATED)


@get("/executions", summary="List executions", responses=errors())
async def list_executions(
    services: Services,
    workflow_id: str | None = Parameter(
        query="workflowId", default=None, max_length=255, pattern=r"^[^\x00]*$"
    ),
    status: str | None = Parameter(query="status", default=None, max_length=16),
    limit: int = Parameter(query="limit", default=50, ge=1, le=500),
    cursor: str | None = Parameter(query="cursor", default=None, max_length=1000),
) -> ExecutionList:
    """Newest first, `limit` per page; pass `nextCursor` back as `cursor` for the next page."""
    if status is not None and status not in RUN_STATUSES:
        raise ValidationException(
            f"unknown status {status!r}; use one of {', '.join(RUN_STATUSES)}"
        )
    try:
        before = decode_cursor(cursor) if cursor is not None else None
    except ValueError as exc:
        raise ValidationException(str(exc)) from None
    query = RunQuery(status=status, workflow=workflow_id, limit=limit + 1, before=before)
    records = await services.client.store.list_runs(query)
    page = records[:limit]
    more = len(records) > limit
    return ExecutionList(
        executions=[summary(r) for r in page],
        next_cursor=encode_cursor(page[-1]) if more and page else None,
    )


async def _load(services: Services, run_id: str) -> tuple[Any, Any, Any]:
    store = services.client.store
    record = await store.get_run(run_id)
    if record is None:
        raise NotFoundException(f"no execution with id {run_id!r}")
    events = [decode_record(r) for r in await store.read_history(run_id)]
    state = fold(run_id, events)
    return record, state, await services.workflow_of(record.workflow, record.version)


@get(
    "/executions/{run_id:str}",
    summary="An execution's status, steps and results",
    responses=errors(404),
)
async def get_execution(services: Services, run_id: str = RunId) -> ExecutionDetail:
    record, state, wf = await _load(services, run_id)
    body = detail(record, state, wf)
    place = await run_place(services.client.store, record)
    body = body if place is None else msgspec.structs.replace(body, queue=place)
    nonces = [(pos, started.nonce) for pos, started in state.externals.items()]
    return redact(body, secrets_of(run_id, nonces))  # no completion tokens for readers


@get(
    "/executions/{run_id:str}/visualize",
    summary="An execution's steps as a graph",
    responses=errors(404),
)
async def visualize_execution(services: Services, run_id: str = RunId) -> Visualization:
    record, state, wf = await _load(services, run_id)
    return visualization(record, state, wf)


@post(
    "/executions/{run_id:str}/cancel",
    status_code=HTTP_202_ACCEPTED,
    summary="Cancel",
    responses=errors(404, 409, *WITH_BODY),
)
async def cancel_execution(
    services: Services, data: CancelRequest | None = None, run_id: str = RunId
) -> Accepted:
    """Cancel the run and its children; it ends `cancelled` once a worker has delivered it
    (status "cancelling"), or at once if it was still waiting in its queue ("cancelled")."""
    try:
        ended = await services.client.cancel(run_id, data.reason if data is not None else "")
    except InvalidIdError:
        raise  # a 400 (create_app's handlers), not a conflict
    except ValueError as exc:  # it has ended
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
    return Accepted(execution_id=run_id, status="cancelled" if ended else "cancelling")


@post(
    "/executions/{run_id:str}/signals/{name:str}",
    status_code=HTTP_202_ACCEPTED,
    summary="Send a signal",
    responses=errors(404, 409, *WITH_BODY),
)
async def signal_execution(
    request: Request[Any, Any, Any],
    services: Services,
    run_id: str = RunId,
    name: str = Parameter(min_length=1, max_length=255, description="The signal's name."),
) -> Accepted:
    """The request body (any JSON, or empty for null) is the signal's payload."""
    body = await request.body()
    try:
        payload = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError as exc:
        raise ValidationException(f"the signal payload is not valid JSON: {exc}") from None
    try:
        await services.client.signal(run_id, name, payload)
    except InvalidIdError:
        raise  # a 400 (create_app's handlers), not a conflict
    except ValueError as exc:  # it has ended
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
    return Accepted(execution_id=run_id, status="signalled")


@get(
    "/executions/{run_id:str}/events",
    summary="An execution's event log (JSON, or a live text/event-stream)",
    responses=errors(404),
)
async def execution_events(
    request: Request[Any, Any, Any],
    services: Services,
    run_id: str = RunId,
    after: int = Parameter(query="after", default=0, ge=0, le=2**31),
) -> Response[Any]:
    """With `Accept: text/event-stream`, a Server-Sent Events stream: every event after
    `after` (one message per event: `id` the seq, `event` the type, `data` the event as JSON),
    live, ending after the run's final event."""
    client = services.client
    if await client.store.get_run(run_id) is None:
        raise NotFoundException(f"no execution with id {run_id!r}")
    secrets = await _secrets(services, run_id)
    if "text/event-stream" in request.headers.get("accept", ""):
        return ServerSentEvent(_stream(services, run_id, after, secrets))
    events = [event_body(e) for e in await client.events(run_id, after)]
    return Response(redact(EventList(events=events), secrets))


async def _secrets(services: Services, run_id: str) -> list[str]:
    """The run's completion tokens and their nonces: never shown by a read (interact)."""
    rows = await services.client.store.list_completions(run_id)
    return secrets_of(run_id, [(r.pos, r.nonce) for r in rows])


async def _stream(
    services: Services, run_id: str, after: int, secrets: list[str]
) -> AsyncIterator[Any]:
    watched = services.client.watch(run_id)
    async for logged in _until(services.stopping, watched):
        if isinstance(logged.event, ExternalStarted):  # opened since the stream began
            secrets += secrets_of(run_id, [(logged.event.pos, logged.event.nonce)])
        if logged.seq <= after:
            continue
        body = msgspec.json.encode(redact(event_body(logged), secrets)).decode()
        # Client.watch ends after the run's final event (not at an end a retry resumed from).
        yield ServerSentEventMessage(data=body, event=logged.type, id=logged.seq)


async def _until(stopping: Stopping, source: AsyncIterator[T]) -> AsyncIterator[T]:
    """`source`'s items until it ends or the server stops: a stream waiting for a run's next
    event must not keep a stopping server waiting (the client reconnects elsewhere, with
    `after`)."""
    stopped = asyncio.ensure_future(stopping.wait())
    step: asyncio.Future[T] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(source))
            await asyncio.wait({step, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return  # stopping: the finally clause cancels the pending read
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        # Also when the client went away (this generator is closed or cancelled).
        stopped.cancel()
        if step is not None and not step.done():
            step.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await step
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
