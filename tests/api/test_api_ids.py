"""Ids over HTTP follow the one rule (durable._ids): a bad execution id, in a body or in a
path, is a 4xx saying what is wrong, never a 500 or a 503 (a NUL in a run id on PostgreSQL
was reported as the database being unavailable)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from serving import serve

APP = textwrap.dedent(
    """
    from sdk import App, Context

    app = App("sqlite:///unused.db")

    @app.workflow(name="hello")
    async def hello(ctx: Context, name: str) -> str:
        return f"hello {name}"
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url: str = request.getfixturevalue("pg_fresh_url")
    return url


def test_bad_execution_ids_are_4xx_with_the_rule(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "hello.py").write_text(APP)
    with serve(tmp_path, "--app", "hello:app", db=db_url) as server, server.client() as api:
        for bad in ("a\x7fb", "c1\x9b", "x" * 256, "rtl\u202e"):
            started = api.post(
                "/executions/start",
                json={"workflowId": "hello", "executionId": bad, "context": "you"},
            )
            assert 400 <= started.status_code < 500, (bad, started.status_code, started.text)
        for path in (
            "/executions/a%00b",
            "/executions/a%00b/visualize",
            "/executions/a%00b/events",
            "/executions/a%00b/streams",
            "/executions/a%00b/streams/k",
        ):
            got = api.get(path)
            assert got.status_code in (400, 404, 422), (path, got.status_code, got.text)
        for path in ("/executions/a%00b/cancel", "/executions/a%00b/signals/go"):
            posted = api.post(path, json={})
            assert posted.status_code in (400, 404, 422), (path, posted.status_code, posted.text)
        assert api.get("/executions", params={"workflowId": "a\x00b"}).status_code in (
            200,
            400,
            422,
        )
        ok = api.post(
            "/executions/start",
            json={"workflowId": "hello", "executionId": "fine-1", "context": "you"},
        )
        assert ok.status_code == 201, ok.text
        # A stream key follows the same rule (PostgreSQL cannot even look a NUL up).
        for key in ("a%00b", "k" * 256):
            got = api.get(f"/executions/fine-1/streams/{key}")
            assert got.status_code in (400, 422), (key, got.status_code, got.text)
