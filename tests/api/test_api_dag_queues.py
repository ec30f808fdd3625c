"""A JSON definition POSTed with `queues:` and a queued step, through a real `durable serve`:
bad declarations and undeclared queues are 422s naming where they are; a good one declares its
queue (GET /queues shows it) and its runs' queued instances run as child runs in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serving import serve, wait_status

ADMIN = "a" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN}
STEPS: list[dict[str, Any]] = [
    {"id": "a", "action": "transform", "params": {"code": "return 1"}},
    {
        "id": "b",
        "dependencies": ["a"],
        "queue": "emails",
        "matrix": {"n": [1, 2]},
        "action": "transform",
        "params": {"inputKey": "a", "code": "return input + deps.a"},
    },
]


def test_a_json_definition_posted_with_queues(tmp_path: Path) -> None:
    with serve(tmp_path, env=TOKENS) as server, server.client(ADMIN) as admin:
        bad = {"id": "mail", "queues": {"emails": {"rateLimit": [0, 60]}}, "steps": STEPS}
        refused = admin.post("/workflows", json=bad)
        assert refused.status_code == 422, refused.text
        (problem,) = refused.json()["problems"]
        assert problem["path"] == "$.queues.emails"
        assert "rateLimit must be [starts, seconds]" in problem["message"]

        undeclared = admin.post("/workflows", json={"id": "mail", "steps": STEPS})
        assert undeclared.status_code == 422, undeclared.text
        (problem,) = undeclared.json()["problems"]
        assert problem["path"] == "$.steps[1].queue"
        assert "queue 'emails' is not declared" in problem["message"]

        good = {"id": "mail", "queues": {"emails": {"concurrency": 1}}, "steps": STEPS}
        posted = admin.post("/workflows", json=good)
        assert posted.status_code == 201, posted.text
        (emails,) = admin.get("/queues").json()["queues"]
        assert (emails["name"], emails["concurrency"]) == ("emails", 1)
        started = admin.post("/executions/start", json={"workflowId": "mail", "context": {}})
        assert started.status_code == 201, started.text
        run_id = started.json()["executionId"]
        wait_status(admin, run_id, {"succeeded"})
        shown = admin.get(f"/executions/{run_id}").json()
        assert shown["stepResults"]["b"]["result"] == [2, 2]  # its dependency, in its child
        runs = admin.get("/executions", params={"workflowId": "mail/b"}).json()["executions"]
        assert sorted(r["executionId"] for r in runs) == [f"{run_id}.1", f"{run_id}.2"]
        assert all(r["status"] == "succeeded" for r in runs)
