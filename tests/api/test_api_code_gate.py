"""Running code on the server is a capability, not a default: a definition whose steps run code
in the worker's process or shell (`script`, `function`, an action the application did not
register) is registered over HTTP only when `durable serve --allow-code-definitions` was
started with an admin token, and the request carries that token. Everything else gets a 403
naming each offending step's JSON path and how to enable it. JavaScript (sandboxed) and the
built-in and application-registered actions are always fine."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from serving import serve, wait_status

from durable.dag import CodeStep, code_steps, parse_definition

ADMIN, READER = "admin-token-0123456789abcdef", "read-token-0123456789abcdef"
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}

APP = textwrap.dedent(
    """
    from sdk import App

    app = App("sqlite:///unused.db")

    def notify(params: dict, context: dict) -> dict:
        return {"sent": params.get("to")}

    app.register_action("notify", notify)
    """
)


def scripted(marker: Path) -> dict[str, Any]:
    return {
        "id": "scripted",
        "steps": [
            {"id": "js", "code": "return 1"},
            {"id": "shell", "script": f"touch {marker}", "dependencies": ["js"]},
        ],
    }


FUNCTION = {"id": "imports", "steps": [{"id": "sys", "function": "os:system"}]}
SAFE = {
    "id": "safe",
    "steps": [
        {"id": "js", "code": "return 1"},
        {"id": "t", "action": "transform", "params": {"code": "return 2"}},
        {"id": "n", "action": "notify", "params": {"to": "ops"}},
        {"id": "d", "action": "delay", "params": {"duration": 1}},
    ],
}


def test_code_steps_names_every_step_that_runs_code_on_the_server() -> None:
    text = json.dumps(
        {
            "id": "mixed",
            "steps": [
                {"id": "js", "code": "return 1"},
                {"id": "sh", "script": "echo hi"},
                {"id": "t", "action": "transform", "params": {"code": "return 1"}},
                {"id": "py", "function": "os:system"},
                {"id": "mine", "action": "notify"},
                {"id": "theirs", "action": "rm.rf"},
                {"id": "nothing"},
            ],
        },
        indent=1,
    )
    definition = parse_definition(text, None, format="json", known_actions={"notify", "rm.rf"})
    found = code_steps(definition, registered_actions={"notify"})
    assert [(c.step, c.kind, c.path) for c in found] == [
        ("sh", "script", "$.steps[1].script"),
        ("py", "function", "$.steps[3].function"),
        ("theirs", "action", "$.steps[5].action"),
    ]
    assert all(isinstance(c, CodeStep) and c.line is not None for c in found)
    lines = text.splitlines()
    assert found[0].line == 1 + next(i for i, t in enumerate(lines) if '"script"' in t)
    assert code_steps(definition, registered_actions={"notify", "rm.rf"})[-1].step == "py"


def test_without_a_token_no_definition_may_run_code(tmp_path: Path) -> None:
    (tmp_path / "notifier.py").write_text(APP)
    marker = tmp_path / "marker"
    with serve(tmp_path, "--app", "notifier:app") as server, server.client() as api:
        refused = api.post("/workflows", json=scripted(marker))
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert [p["path"] for p in body["problems"]] == ["$.steps[1].script"]
        assert "--allow-code-definitions" in body["error"] and "admin token" in body["error"]
        assert "shell" in body["problems"][0]["message"]
        imports = api.post("/workflows", json=FUNCTION)
        assert imports.status_code == 403, imports.text
        assert imports.json()["problems"][0]["path"] == "$.steps[0].function"
        assert "os:system" in imports.json()["problems"][0]["message"]
        assert api.post("/workflows", json=SAFE).status_code == 201
        assert [w["id"] for w in api.get("/workflows").json()["workflows"]] == ["safe"]
        assert not marker.exists()


def test_the_flag_without_an_admin_token_still_refuses_and_says_why(tmp_path: Path) -> None:
    with (
        serve(tmp_path, "--allow-code-definitions") as server,
        server.client() as api,
    ):
        refused = api.post("/workflows", json=scripted(tmp_path / "marker"))
        assert refused.status_code == 403, refused.text
        error = refused.json()["error"]
        assert "no admin token" in error and "DURABLE_API_TOKEN" in error, error
    assert "no admin token" in server.output()  # serve warned at start


def test_an_admin_token_needs_the_flag_too(tmp_path: Path) -> None:
    with serve(tmp_path, env=TOKENS) as server, server.client(ADMIN) as admin:
        refused = admin.post("/workflows", json=scripted(tmp_path / "marker"))
        assert refused.status_code == 403, refused.text
        assert "--allow-code-definitions" in refused.json()["error"]
        assert admin.post("/workflows", json=FUNCTION).status_code == 403


@pytest.mark.parametrize("token", [READER, None])
def test_with_the_flag_only_an_admin_token_registers_code(
    tmp_path: Path, token: str | None
) -> None:
    marker = tmp_path / "marker"
    with serve(tmp_path, "--allow-code-definitions", env=TOKENS) as server:
        with server.client(token) as other:
            assert other.post("/workflows", json=scripted(marker)).status_code in (401, 403)
        with server.client(ADMIN) as admin:
            created = admin.post("/workflows", json=scripted(marker))
            assert created.status_code == 201, created.text
            start = {"workflowId": "scripted", "executionId": "s-1"}
            assert admin.post("/executions/start", json=start).status_code == 201
            assert wait_status(admin, "s-1", {"succeeded", "failed"})["status"] == "succeeded"
    assert marker.exists()
