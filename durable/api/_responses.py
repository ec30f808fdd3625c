"""The error answers each operation documents in the OpenAPI schema, with the body they carry
(ErrorResponse). Documented per operation so a client generated from /openapi.json knows every
status it must handle; tests/api/test_api_fuzz.py checks no answer is undocumented."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from ._schemas import ErrorResponse

_WHY = {
    400: "Bad request: invalid JSON, parameters or ids, nesting too deep, or a Host header "
    "the server does not serve",
    401: "No valid token (only when the server has tokens)",
    403: "Refused: the token's role may not do this, a cross-site request (Origin), or a "
    "definition that runs code on a server not started with --allow-code-definitions",
    404: "No such workflow or execution",
    409: "Conflicts with what exists (an execution id or definition already taken, a run "
    "already finished)",
    413: "The request body is larger than the server's --max-body",
    415: "The request body is not application/json",
    422: "The input does not fit the workflow's input type",
    500: "The server failed (logged by the server); or a stored event is damaged (named)",
    503: "The database is unavailable",
}

# Every operation may answer these: the Host check, tokens, roles, the server's own failures.
ANY = (400, 401, 403, 500, 503)
# ...and those anyone may call (no token asked), these.
PUBLIC = (400, 500, 503)
# Operations that take a JSON body.
WITH_BODY = (413, 415)


def errors(*codes: int, public: bool = False) -> dict[int, ResponseSpec]:
    """The `responses=` of an operation: ANY (PUBLIC if it asks no token), and `codes`."""
    return {
        code: ResponseSpec(ErrorResponse, description=_WHY[code], generate_examples=False)
        for code in sorted({*(PUBLIC if public else ANY), *codes})
    }
