"""The Litestar application behind `durable serve`: routes, auth, errors, schema, dashboard.

An API process holds no state of its own: runs, events and stored definitions live in the
database, so any number of processes can serve the same database (and run workers, or not).
Every error a request can cause is a 4xx with {"error": ..., "problems": [...]}: a 500 means a
bug in the server, never bad input.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from durable._engine import Engine
from durable._errors import (
    CorruptEventError,
    InvalidIdError,
    QueueError,
    QueueNotFoundError,
    RepairError,
    RunIdConflictError,
    RunNotFoundError,
    ScheduleError,
    ScheduleNotFoundError,
    SerializationError,
    UnknownWorkflowError,
    WorkflowDefinitionError,
)
from durable._worker import WorkerOptions
from durable.dag._problems import DagDefinitionError
from durable.runtime._registry import Registry
from storage import (
    DatabaseUnavailableError,
    DefinitionConflictError,
    EventChecksumError,
    RunQuery,
    RunStatusError,
    StorageError,
)

from . import (
    _approvals,
    _executions,
    _external,
    _histories,
    _queues,
    _schedules,
    _streams,
    _updates,
    _values,
    _workflows,
)
from ._auth import Tokens, guard
from ._docs import docs_page
from ._limits import MAX_JSON_DEPTH, BodyLimits
from ._responses import errors
from ._sameorigin import AllowedHosts, SameOrigin
from ._schemas import ErrorResponse, Health, ProblemBody
from ._services import Services, Stopping

log = logging.getLogger("durable.api")

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: a definition or a start request, never a file upload


@dataclass(frozen=True, slots=True)
class ApiOptions:
    url: str | None = None
    registry: Registry | None = None
    tokens: Tokens = field(default_factory=Tokens)
    run_worker: bool = True
    max_body: int = DEFAULT_MAX_BODY
    max_depth: int = MAX_JSON_DEPTH  # nesting of arrays/objects in a request body
    worker: WorkerOptions | None = None  # the in-process worker's settings (None: defaults)
    # The Host names requests may give (DNS rebinding); durable serve: its bind address.
    hosts: AllowedHosts = field(default_factory=AllowedHosts)
    # Definitions with script/function steps over HTTP, from admin tokens (and never else).
    allow_code_definitions: bool = False


def _services(state: State) -> Services:
    services: Services = state.services
    return services


@get(
    "/health",
    opt={"public": True},
    summary="Liveness and database check",
    responses=errors(public=True),
)
async def health(services: Services) -> Response[Health]:
    try:
        await services.client.store.list_runs(_ONE)
    except StorageError as exc:
        log.warning("health check: database unavailable: %s", exc)
        return Response(Health(status="unavailable", database=str(exc)), status_code=503)
    return Response(Health(status="ok", database="ok"))


@get("/openapi.json", opt={"public": True}, include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    schema = request.app.openapi_schema.to_schema()
    return Response(msgspec.json.encode(schema), media_type=MediaType.JSON)


@get("/docs", opt={"public": True}, include_in_schema=False, media_type=MediaType.HTML)
async def docs(request: Request[Any, Any, Any]) -> str:
    return docs_page(request.app.openapi_schema.to_schema())


@get("/", opt={"public": True}, include_in_schema=False, media_type=MediaType.HTML)
async def dashboard() -> Response[bytes]:
    index = STATIC / "index.html"
    if not index.exists():
        return Response(b"<!doctype html><p>dashboard assets missing</p>", status_code=500)
    return Response(index.read_bytes(), media_type=MediaType.HTML)


def _error(status: int, message: str, problems: list[ProblemBody] | None = None) -> Response[Any]:
    return Response(ErrorResponse(error=message, problems=problems or []), status_code=status)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    problems: list[ProblemBody] = []
    extra = exc.extra
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                path = str(item.get("key") or item.get("source") or "$")
                line = item.get("line")
                problems.append(
                    ProblemBody(
                        path=path,
                        message=str(item.get("message", "")),
                        line=line if isinstance(line, int) else None,
                    )
                )
    headers = exc.headers or {}
    response = _error(exc.status_code, exc.detail, problems)
    response.headers.update(headers)
    return response


def _definition_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, DagDefinitionError):
        problems = [ProblemBody(path=p.path, message=p.message, line=p.line) for p in exc.problems]
        return _error(422, f"invalid workflow definition: {exc.message}", problems)
    return _error(422, str(exc))


def _mapped(status: int) -> Any:
    def handler(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        return _error(status, str(exc))

    return handler


def _damaged(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A stored event failed its checksum or cannot be decoded: the server's data, not the
    request, is at fault, so a 500 — but one that says which run and event, not a generic one."""
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return _error(500, str(exc))


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error (logged by the server)")


_ONE = RunQuery(limit=1)


def end_streams(app: Litestar) -> None:
    """The server is stopping: end every open event stream now (and any opened later).
    Safe to call from a signal handler."""
    stopping: Stopping = app.state.stopping
    stopping.set()


def create_app(options: ApiOptions) -> Litestar:
    registry = options.registry or Registry()
    stopping = Stopping()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = Engine(
            options.url,
            registry,
            run_worker=options.run_worker,
            options=options.worker,
            follow_definitions=True,
        )
        await engine.open()
        stopping.bind(asyncio.get_running_loop())
        app.state.services = Services(engine.client, registry, engine.definitions, stopping)
        try:
            yield
        finally:
            await engine.close()

    routes: list[ControllerRouterHandler] = [
        health,
        openapi_json,
        docs,
        dashboard,
        _workflows.register_workflow,
        _workflows.list_workflows,
        _workflows.get_workflow,
        _executions.start_execution,
        _executions.list_executions,
        _executions.get_execution,
        _executions.visualize_execution,
        _executions.cancel_execution,
        _executions.signal_execution,
        _executions.execution_events,
        _histories.list_histories,
        _values.list_execution_values,
        _values.get_execution_value,
        _values.query_execution,
        _streams.list_streams,
        _streams.read_stream,
        _updates.send_update,
        _updates.list_updates,
        _updates.get_update,
        _approvals.list_approvals,
        _approvals.decide_approval,
        _external.complete_wait,
        _external.fail_wait,
        _external.list_waits,
        _queues.list_all,
        _queues.get_one,
        _schedules.list_all,
        _schedules.get_one,
        _schedules.pause,
        _schedules.resume,
        _schedules.trigger_now,
        _schedules.backfill_range,
    ]
    if STATIC.is_dir():
        routes.append(
            create_static_files_router(
                path="/static", directories=[STATIC], opt={"public": True}, include_in_schema=False
            )
        )
    return Litestar(
        route_handlers=routes,
        lifespan=[lifespan],
        guards=[guard],
        # Outermost first: who may ask (Host, Origin, Content-Type), then how big and deep.
        middleware=[
            DefineMiddleware(SameOrigin, hosts=options.hosts),
            DefineMiddleware(BodyLimits, max_body=options.max_body, max_depth=options.max_depth),
        ],
        dependencies={"services": Provide(_services, sync_to_thread=False)},
        request_max_body_size=options.max_body,
        state=State(
            {
                "tokens": options.tokens,
                "allow_code_definitions": options.allow_code_definitions,
                "stopping": stopping,
            }
        ),
        openapi_config=OpenAPIConfig(
            title="durable",
            version="1",
            description="Start, watch and steer durable workflow runs.",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="token")
                }
            ),
            security=[{"bearer": []}],
        ),
        exception_handlers={
            HTTPException: _http,
            WorkflowDefinitionError: _definition_error,
            RunNotFoundError: _mapped(404),
            UnknownWorkflowError: _mapped(404),
            RunIdConflictError: _mapped(409),
            DefinitionConflictError: _mapped(409),
            RunStatusError: _mapped(409),
            RepairError: _mapped(409),
            ScheduleNotFoundError: _mapped(404),
            QueueNotFoundError: _mapped(404),
            QueueError: _mapped(400),
            ScheduleError: _mapped(400),
            SerializationError: _mapped(400),
            InvalidIdError: _mapped(400),
            DatabaseUnavailableError: _mapped(503),
            EventChecksumError: _damaged,
            CorruptEventError: _damaged,
            Exception: _internal,
        },
    )
