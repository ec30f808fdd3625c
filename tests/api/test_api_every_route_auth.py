"""With tokens configured, every route of the API refuses a request without a valid token.

test_api.py's token test asks one route; this one walks the application's own route table
(every handler Litestar would dispatch to, whether or not it is in the schema), asks each with
its own method, and gives the tokens in a file (--tokens) rather than the environment. A route
added later without the guard, or one marked public by mistake, fails here by its name.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import httpx
from serving import serve

ADMIN = "admin-token-" + "a" * 24
READER = "read-token-" + "r" * 24
# What answers without a token, on purpose: the load balancer's check, the API's description
# and the dashboard's page and files (the dashboard then asks for a token for everything).
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/"),
    ("GET", "/static/{file_path:path}"),
    ("HEAD", "/static/{file_path:path}"),
    ("OPTIONS", "/static/{file_path:path}"),
}


def routes() -> list[tuple[str, str]]:
    """(method, path template) of every handler of the application `durable serve` runs.
    OPTIONS handlers Litestar adds by itself answer with the Allow header and run no code of
    ours: left out (the static files' own OPTIONS is ours, and public)."""
    with warnings.catch_warnings():
        # Litestar's notices about the handlers' signatures (every server log shows them).
        warnings.simplefilter("ignore", DeprecationWarning)
        from durable.api._app import ApiOptions, create_app

        app = create_app(ApiOptions(url="sqlite:///:memory:"))
    found: list[tuple[str, str]] = []
    for route in app.routes:
        handlers = getattr(route, "route_handler_map", {})
        for method, (handler, *_) in handlers.items():
            if method == "OPTIONS" and not handler.opt.get("public"):
                continue
            found.append((method, route.path))
    return found


def concrete(template: str) -> str:
    """A path that reaches the template's handler: each parameter filled with a plain name."""
    return re.sub(r"\{[^}]+\}", "x1", template)


def test_every_route_refuses_a_missing_or_invalid_token(tmp_path: Path) -> None:
    table = routes()
    assert len(table) >= 40  # the walk found the API, not an empty application
    assert {route for route in table if route in PUBLIC} == PUBLIC
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'admin = ["{ADMIN}"]\nread = ["{READER}"]\n')
    refused: dict[str, list[tuple[str, str]]] = {}
    answered: list[tuple[str, str, int]] = []
    with (
        serve(tmp_path, "--tokens", str(tokens)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for method, template in table:
            # A JSON body on writes, so the cross-site rules (Content-Type) pass and only the
            # token is missing.
            body: dict[str, object] | None = {} if method == "POST" else None
            for label, headers in (
                ("none", {}),
                ("wrong token", {"Authorization": f"Bearer {ADMIN[::-1]}"}),
                ("not a bearer", {"Authorization": f"Basic {ADMIN}"}),
                ("bearer, no token", {"Authorization": "Bearer"}),
            ):
                response = client.request(method, concrete(template), headers=headers, json=body)
                if (method, template) in PUBLIC:
                    answered.append((method, template, response.status_code))
                    continue
                if response.status_code != 401:
                    refused.setdefault(label, []).append((method, template))
                    continue
                error = response.json()["error"]
                wanted = "not valid" if label == "wrong token" else "Bearer TOKEN"
                assert wanted in error, (label, method, template, error)
        # A valid token is let in: the refusals above are the guard's, not a broken server's.
        ok = client.get("/executions", headers={"Authorization": f"Bearer {READER}"})
    assert refused == {}, f"answered without a valid token: {refused}"
    assert all(status != 401 for _, _, status in answered), answered
    assert ok.status_code == 200
