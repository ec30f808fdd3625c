"""/completions: completing and failing external waits (ctx.wait_external) by their token, from
any system that can POST (admin token: it changes a run); /executions/{id}/external lists a
run's external waits (read token) without their tokens, so a reader cannot complete them.
The token travels in the body, never in the path: access logs keep paths."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.status_codes import HTTP_200_OK, HTTP_400_BAD_REQUEST, HTTP_409_CONFLICT

from durable._errors import ExternalAlreadySettledError, InvalidTokenError
from durable.interact._external import list_external
from durable.runtime._external import MAX_TOKEN_CHARS

from ._executions import RunId
from ._responses import WITH_BODY, errors
from ._schemas import Api
from ._services import Services
from ._shapes import ms

Token = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]
Text = Annotated[str, msgspec.Meta(max_length=64 * 1024)]


class CompleteRequest(Api, forbid_unknown_fields=True):
    token: Token
    result: Any = None


class FailureBody(Api, forbid_unknown_fields=True):
    message: Text
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None


class FailRequest(Api, forbid_unknown_fields=True):
    token: Token
    error: FailureBody | Text


class Settled(Api):
    status: str  # "completed" or "failed"


class ExternalWaitBody(Api):
    position: int
    name: str
    status: str  # waiting, completed, failed, timed_out, abandoned (the run ended first)
    deadline: int | None  # epoch ms
    created_at: int
    settled_at: int | None


class ExternalWaitList(Api):
    external_waits: list[ExternalWaitBody]


@post(
    "/completions",
    status_code=HTTP_200_OK,
    summary="Complete an external wait",
    responses=errors(400, 409, *WITH_BODY),
)
async def complete_wait(services: Services, data: CompleteRequest) -> Settled:
    """`{"token": "dx1....", "result": <any JSON>}`: the workflow's `await` of the wait returns
    `result`. 409 if it was already completed, failed or timed out (or its run ended): a
    completion counts once. 400 for a token that names no wait."""
    await _settling(services.client.complete(data.token, data.result))
    return Settled(status="completed")


@post(
    "/completions/fail",
    status_code=HTTP_200_OK,
    summary="Fail an external wait",
    responses=errors(400, 409, *WITH_BODY),
)
async def fail_wait(services: Services, data: FailRequest) -> Settled:
    """`{"token": "dx1....", "error": "message"}` or `"error": {"message", "type"}`: the
    workflow's `await` raises ExternalFailed. 409 / 400 as for /completions."""
    error = data.error
    if isinstance(error, str):
        await _settling(services.client.fail(data.token, error))
    else:
        await _settling(services.client.fail(data.token, error.message, type=error.type))
    return Settled(status="failed")


async def _settling(settle: Any) -> None:
    try:
        await settle
    except InvalidTokenError as exc:
        raise ClientException(str(exc), status_code=HTTP_400_BAD_REQUEST) from None
    except ExternalAlreadySettledError as exc:
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None


@get(
    "/executions/{run_id:str}/external",
    summary="An execution's external waits (never their tokens)",
    responses=errors(404),
)
async def list_waits(services: Services, run_id: str = RunId) -> ExternalWaitList:
    client = services.client
    if await client.store.get_run(run_id) is None:
        raise NotFoundException(f"no execution with id {run_id!r}")
    return ExternalWaitList(
        external_waits=[
            ExternalWaitBody(
                position=w.pos,
                name=w.name,
                status=w.status,
                deadline=ms(w.deadline),
                created_at=ms(w.created_at) or 0,
                settled_at=ms(w.settled_at),
            )
            for w in await list_external(client, run_id)
        ]
    )
