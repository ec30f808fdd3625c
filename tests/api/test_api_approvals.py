"""Agent approvals over HTTP, through a real `durable serve` (its worker runs the agent):
GET /executions/{id}/approvals lists them (a read token suffices), POST
/executions/{id}/approvals/{toolCallId} decides one (an admin token, JSON, same origin), once:
a second decision, an unknown call or an ended run get 409, an unknown run 404, a bad body
400."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from serving import serve, wait_status

ADMIN, READER = "a" * 32, "r" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}
APP_FILE = Path(__file__).with_name("agent_approval_app.py")


def pending(api: httpx.Client, run_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = api.get(f"/executions/{run_id}/approvals")
        assert answer.status_code == 200, answer.text
        found = [a for a in answer.json()["approvals"] if a["status"] == "pending"]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {count} pending approvals in {run_id}")


def test_listing_and_deciding_approvals_over_http(tmp_path: Path) -> None:
    (tmp_path / APP_FILE.name).write_text(APP_FILE.read_text())
    with (
        serve(tmp_path, "--app", "agent_approval_app:app", env=TOKENS) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as reader,
        server.client() as anonymous,
    ):
        start = {"workflowId": "cleanup", "context": "delete /a /b", "executionId": "h1"}
        assert admin.post("/executions/start", json=start).status_code == 201
        first, _ = pending(reader, "h1", 2)
        assert (first["toolCallId"], first["toolName"], first["args"]) == (
            "d1",
            "delete",
            {"path": "/a"},
        )
        assert first["agent"] == "ops" and first["decided"] is False and first["requestedAt"] > 0

        url = "/executions/h1/approvals/d1"
        assert anonymous.post(url, json={"approved": True}).status_code == 401
        read_only = reader.post(url, json={"approved": True})
        assert read_only.status_code == 403 and "read-only" in read_only.json()["error"]
        foreign = admin.post(
            url, json={"approved": True}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        for bad in ({}, {"approved": "yes"}, {"approved": True, "extra": 1}, [True]):
            answer = admin.post(url, json=bad)
            assert answer.status_code == 400, (bad, answer.text)
        not_json = admin.post(url, content=b"{nope", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 400
        assert (
            admin.post("/executions/nope/approvals/d1", json={"approved": True}).status_code == 404
        )
        assert reader.get("/executions/nope/approvals").status_code == 404
        unknown = admin.post("/executions/h1/approvals/zz", json={"approved": True})
        assert unknown.status_code == 409 and "no approval request" in unknown.json()["error"]
        # Nothing above was a decision.
        assert [a["status"] for a in pending(reader, "h1", 2)] == ["pending", "pending"]

        approved = admin.post(url, json={"approved": True, "reason": "ok"})
        assert approved.status_code == 202, approved.text
        assert approved.json()["status"] == "approved" and approved.json()["reason"] == "ok"
        twice = admin.post(url, json={"approved": False, "reason": "no"})
        assert twice.status_code == 409 and "already approved" in twice.json()["error"]
        denied = admin.post(
            "/executions/h1/approvals/d2", json={"approved": False, "reason": "keep /b"}
        )
        assert denied.status_code == 202 and denied.json()["status"] == "denied"

        done = wait_status(reader, "h1", {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        run = reader.get("/executions/h1").json()
        results = [r["result"] for r in run["stepResults"].values()]
        assert results[-1] is not None
        listed = reader.get("/executions/h1/approvals").json()["approvals"]
        assert [(a["status"], a["reason"]) for a in listed] == [
            ("approved", "ok"),
            ("denied", "keep /b"),
        ]
        assert all(a["decidedAt"] >= a["requestedAt"] for a in listed)
        ended = admin.post(url, json={"approved": True})
        assert ended.status_code == 409

        schema = reader.get("/openapi.json").json()
        paths = schema["paths"]
        assert "get" in paths["/executions/{run_id}/approvals"]
        decide = paths["/executions/{run_id}/approvals/{tool_call_id}"]["post"]
        assert {"202", "400", "404", "409"} <= set(decide["responses"])
