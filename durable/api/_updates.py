"""/executions/{id}/updates: sending updates to a run (answered by its workflow's handler,
ctx.on_update; docs/interacting.md) and reading them back. Sending changes the run: an admin
token (every non-GET route does, see _auth). Exactly once per update id: a repeated id attaches
to the update already sent and answers with its outcome."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Response, get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Parameter
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_202_ACCEPTED,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)

from durable._errors import (
    ErrorInfo,
    InvalidIdError,
    InvalidInputError,
    RunIdConflictError,
    UpdateFailed,
    UpdateRejected,
)
from durable._ids import check_id
from durable.interact._updates import Update, UpdateInfo

from ._executions import RunId
from ._responses import WITH_BODY, errors
from ._schemas import Api, Id
from ._services import Services
from ._shapes import ms

UpdateName = Parameter(
    min_length=1, max_length=255, pattern=r"^[^\x00]+$", description="The handler's name."
)
UpdateId = Parameter(
    min_length=1, max_length=255, pattern=r"^[^\x00]+$", description="The update's id."
)
MAX_WAIT = 60.0  # seconds a request may wait for the answer


class StartSpec(Api, forbid_unknown_fields=True):
    """Update-with-start: the run to start under the URL's id if it does not exist."""

    workflow_id: Id
    context: Any = None
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class UpdateRequest(Api, forbid_unknown_fields=True):
    args: list[Any] = msgspec.field(default_factory=list)
    start: StartSpec | None = None
    # Your own id makes a retry safe (the same id never runs twice); default: a new one.
    update_id: Id | None = None
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT)] = 30.0  # seconds


class UpdateError(Api):
    type: str
    message: str


class UpdateBody(Api):
    execution_id: str
    update_id: str
    name: str
    # requested, accepted (still running), completed, failed (the handler raised, or the
    # run ended while it ran), rejected (never entered the log)
    status: str
    args: Any = None
    result: Any = None
    error: UpdateError | None = None
    created_at: int | None = None
    updated_at: int | None = None


class UpdateList(Api):
    updates: list[UpdateBody]


def _error(info: ErrorInfo | None) -> UpdateError | None:
    return None if info is None else UpdateError(type=info.type, message=info.message)


def update_body(info: UpdateInfo) -> UpdateBody:
    return UpdateBody(
        execution_id=info.run_id,
        update_id=info.update_id,
        name=info.name,
        status=info.status,
        args=info.args,
        result=info.result,
        error=_error(info.error),
        created_at=ms(info.created_at),
        updated_at=ms(info.updated_at),
    )


@post(
    "/executions/{run_id:str}/updates/{name:str}",
    status_code=HTTP_200_OK,
    summary="Send an update and wait for its answer",
    responses=errors(404, 409, 422, *WITH_BODY),
)
async def send_update(
    services: Services,
    data: UpdateRequest | None = None,
    run_id: str = RunId,
    name: str = UpdateName,
) -> Response[UpdateBody]:
    """`{"args": [...], "updateId": "...", "wait": 30}` (all optional). 200 once the handler
    answered: `status` completed (`result`) or failed (`error`: it raised); 202 if it is
    still running after `wait` seconds (ask GET .../updates/{updateId}, or POST again with
    the same updateId); 422 if it was rejected (its validator raised, no such handler, the
    run ended first); 409 if the run has ended or is a DAG run. With `"start": {"workflowId",
    "context", "version"}`: update-with-start, the run is started under this id first if it
    does not exist (one transaction); a run of another workflow under it is a 409."""
    body = data if data is not None else UpdateRequest()
    check_id("update name", name)
    uid = body.update_id if body.update_id is not None else uuid.uuid4().hex
    client = services.client
    wait = max(body.wait, 0.001)
    try:
        if body.start is not None:
            await services.find_workflow(body.start.workflow_id, body.start.version)
            result = await client.update_with_start(
                body.start.workflow_id,
                body.start.context,
                run_id=run_id,
                update=Update(name, tuple(body.args), uid),
                version=body.start.version,
                timeout=wait,
            )
        else:
            result = await client.update(run_id, name, *body.args, update_id=uid, timeout=wait)
    except UpdateRejected:
        info = await client.get_update(run_id, uid)
        return Response(update_body(info), status_code=HTTP_422_UNPROCESSABLE_ENTITY)
    except UpdateFailed:
        info = await client.get_update(run_id, uid)
        return Response(update_body(info), status_code=HTTP_200_OK)
    except TimeoutError:
        info = await client.get_update(run_id, uid)
        return Response(update_body(info), status_code=HTTP_202_ACCEPTED)
    except (InvalidIdError, RunIdConflictError):
        raise  # a 400, a 409
    except InvalidInputError as exc:  # the start's input does not fit the workflow
        raise ClientException(str(exc), status_code=HTTP_422_UNPROCESSABLE_ENTITY) from None
    except (ValueError, TypeError) as exc:  # the run ended, or is a DAG run
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
    info = await client.get_update(run_id, uid)
    body_out = update_body(info)
    return Response(msgspec.structs.replace(body_out, result=result), status_code=HTTP_200_OK)


@get(
    "/executions/{run_id:str}/updates",
    summary="The updates sent to an execution",
    responses=errors(404),
)
async def list_updates(services: Services, run_id: str = RunId) -> UpdateList:
    """Oldest first, each with its status and answer."""
    found = await services.client.list_updates(run_id)
    return UpdateList(updates=[update_body(u) for u in found])


@get(
    "/executions/{run_id:str}/updates/{update_id:str}",
    summary="One update of an execution",
    responses=errors(404),
)
async def get_update(
    services: Services, run_id: str = RunId, update_id: str = UpdateId
) -> UpdateBody:
    try:
        info = await services.client.get_update(run_id, update_id)
    except LookupError as exc:  # no such run, or no such update of it
        raise NotFoundException(str(exc)) from None
    return update_body(info)
