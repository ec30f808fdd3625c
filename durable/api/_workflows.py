"""/workflows: register a DAG definition (003's JSON), list workflows, show one with its
versions. Definitions registered here are stored in the database; workflows of the served
application (`--app`) are listed too, as registered in code."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import (
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from durable._definitions import store_definition
from durable.dag import CodeStep, code_steps, parse_definition
from durable.runtime._registry import WorkflowDef, _version_key
from storage import DefinitionRecord

from ._auth import ADMIN_ENV, Tokens, is_admin
from ._responses import WITH_BODY, errors
from ._schemas import Registered, WorkflowDetail, WorkflowList, WorkflowSummary, WorkflowVersion
from ._services import Services
from ._shapes import ms


@post(
    "/workflows",
    status_code=HTTP_201_CREATED,
    summary="Register a workflow definition",
    responses=errors(409, *WITH_BODY),
)
async def register_workflow(
    request: Request[Any, Any, Any], services: Services
) -> Response[Registered]:
    """The body is a DAG definition in 003's JSON format. 201 with the version it was stored
    as; 200 if that content was already registered; 422 with the path of every problem; 403
    for steps that run code on the server (script, function, actions the application did not
    register) unless the server allows them (--allow-code-definitions) and the token is an
    admin's."""
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationException("the definition must be UTF-8 JSON") from None
    if not text.strip():
        raise ValidationException("the request body must be a workflow definition (JSON)")
    registry = services.registry
    definition = parse_definition(text, None, format="json", known_actions=registry.actions)
    code = code_steps(definition, registered_actions=registry.actions)
    if code:
        _admit_code(request, code)
    wf, created = await store_definition(services.client.store, services.registry, text)
    body_out = Registered(
        id=wf.name, version=wf.version, created=created, fingerprint=wf.fingerprint
    )
    return Response(body_out, status_code=HTTP_201_CREATED if created else HTTP_200_OK)


def _admit_code(request: Request[Any, Any, Any], code: list[CodeStep]) -> None:
    """Definitions that run code on the server: only with --allow-code-definitions, and only
    from an admin token (which a server without tokens does not have)."""
    allowed: bool = request.app.state.allow_code_definitions
    if allowed and is_admin(request):
        return
    tokens: Tokens = request.app.state.tokens
    steps = ("steps " if len(code) > 1 else "step ") + ", ".join(repr(c.step) for c in code)
    what = (
        f"refused: this definition runs code on the server ({steps}: see problems), "
        "which only an operator can allow"
    )
    if not tokens.admin:
        why = (
            "this server has no admin token, and a server without one never accepts such "
            f"definitions over HTTP. Start it with an admin token ({ADMIN_ENV} or --tokens "
            "FILE) and --allow-code-definitions, then send that token"
        )
    elif not allowed:
        why = (
            "this server was not started with --allow-code-definitions (restart it with "
            "that flag to let admin tokens register such definitions)"
        )
    else:
        why = "only an admin token may register such definitions"
    hint = "; or register the workflow in the application the server loads (--app)"
    raise PermissionDeniedException(
        f"{what}: {why}{hint}",
        extra=[{"key": c.path, "message": c.describe(), "line": c.line} for c in code],
    )


def _kind(wf: WorkflowDef) -> str:
    return "dag" if wf.dag is not None else "python"


def _description(wf: WorkflowDef) -> str | None:
    if wf.dag is not None:
        return wf.dag.definition.description
    doc = (getattr(wf.fn, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else None


def _title(wf: WorkflowDef) -> str:
    if wf.dag is not None and wf.dag.definition.title:
        return wf.dag.definition.title
    return wf.name


def _by_name(services: Services) -> dict[str, list[WorkflowDef]]:
    out: dict[str, list[WorkflowDef]] = {}
    for name, version in services.registry.keys():  # noqa: SIM118  (a list, not a dict)
        wf = services.registry.get(name, version)
        if wf is not None:
            out.setdefault(name, []).append(wf)
    for versions in out.values():
        versions.sort(key=lambda w: _version_key(w.version))
    return out


@get("/workflows", summary="List workflows", responses=errors())
async def list_workflows(services: Services) -> WorkflowList:
    await services.definitions.sync()
    items = []
    for name, versions in sorted(_by_name(services).items()):
        latest = versions[-1]
        items.append(
            WorkflowSummary(
                id=name,
                name=_title(latest),
                description=_description(latest),
                version=latest.version,
                versions=[w.version for w in versions],
                kind=_kind(latest),
            )
        )
    return WorkflowList(workflows=items)


@get("/workflows/{workflow_id:str}", summary="A workflow and its versions", responses=errors(404))
async def get_workflow(
    services: Services,
    workflow_id: str = Parameter(min_length=1, max_length=255),
    version: str | None = Parameter(query="version", default=None, max_length=64),
) -> WorkflowDetail:
    await services.definitions.sync()
    versions = _by_name(services).get(workflow_id)
    if not versions:
        raise NotFoundException(f"no workflow {workflow_id!r}")
    chosen = versions[-1]
    if version is not None:
        found = [w for w in versions if w.version == version]
        if not found:
            have = ", ".join(w.version for w in versions)
            raise NotFoundException(f"workflow {workflow_id!r} has no version {version!r} ({have})")
        chosen = found[0]
    stored = {r.version: r for r in await services.client.store.list_definitions(workflow_id)}
    return WorkflowDetail(
        id=workflow_id,
        name=_title(chosen),
        description=_description(chosen),
        version=chosen.version,
        kind=_kind(chosen),
        versions=[
            WorkflowVersion(
                version=w.version,
                fingerprint=w.fingerprint,
                registered="api" if w.version in stored else "code",
                created_at=ms(stored[w.version].created_at) if w.version in stored else None,
            )
            for w in versions
        ],
        definition=_definition(chosen, stored.get(chosen.version)),
    )


def _definition(wf: WorkflowDef, record: DefinitionRecord | None) -> Any:
    if record is not None and record.format == "json":
        return json.loads(record.source)
    if record is not None:
        return record.source
    if wf.dag is not None:
        return msgspec.to_builtins(wf.dag.definition, order="deterministic")
    return None
