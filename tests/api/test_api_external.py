"""External waits over HTTP, through a real `durable serve` (its worker runs the workflow):
POST /completions and /completions/fail need the admin token (a read token gets 403, none
401); the token travels in the body; GET /executions/{id}/external lists the waits (a read
token suffices) and never shows a token; a second settle is 409, a bad token 400."""

from __future__ import annotations

import time
from pathlib import Path

from serving import serve, wait_status

from durable.runtime._external import decode_token

APP_FILE = Path(__file__).with_name("external_app.py")
ADMIN, READER = "a" * 32, "r" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}


def _token(path: Path, count: int) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = path.read_text().split() if path.exists() else []
        if len(lines) >= count:
            return lines[count - 1]
        time.sleep(0.05)
    raise AssertionError("the step never sent the token")


def test_completing_and_failing_over_http(tmp_path: Path) -> None:
    (tmp_path / APP_FILE.name).write_text(APP_FILE.read_text())
    tokens = tmp_path / "tokens.txt"
    env = {**TOKENS, "TOKENS": str(tokens)}
    with (
        serve(tmp_path, "--app", "external_app:app", env=env) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as reader,
        server.client() as anonymous,
    ):
        start = {"workflowId": "pay", "context": 600, "executionId": "p1"}
        assert admin.post("/executions/start", json=start).status_code == 201
        token = _token(tokens, 1)
        listed = reader.get("/executions/p1/external")
        assert listed.status_code == 200, listed.text
        [wait] = listed.json()["externalWaits"]
        assert (wait["name"], wait["status"], wait["position"]) == ("payment", "waiting", 0)
        assert wait["deadline"] > wait["createdAt"] > 0
        assert token not in listed.text and token[4:] not in listed.text
        # Neither the token (the step's input) nor its nonce (ExternalStarted) is readable.
        nonce = decode_token(token)[2]
        for path in ("/executions/p1/events", "/executions/p1"):
            shown = reader.get(path)
            assert shown.status_code == 200, shown.text
            assert token not in shown.text and nonce not in shown.text, path
        assert "<redacted>" in reader.get("/executions/p1/events").text

        body = {"token": token, "result": {"amount": 12}}
        assert anonymous.post("/completions", json=body).status_code == 401
        read_only = reader.post("/completions", json=body)
        assert read_only.status_code == 403 and "read-only" in read_only.json()["error"]
        for bad in ({}, {"token": 5}, {"token": token, "extra": 1}, [token]):
            assert admin.post("/completions", json=bad).status_code == 400, bad
        wrong = admin.post("/completions", json={"token": "dx1.AAAA", "result": 1})
        assert wrong.status_code == 400 and "completion token" in wrong.json()["error"]
        done = admin.post("/completions", json=body)
        assert done.status_code == 200 and done.json() == {"status": "completed"}, done.text
        assert wait_status(reader, "p1", {"succeeded"})["status"] == "succeeded"
        again = admin.post("/completions", json=body)
        assert again.status_code == 409 and "already completed" in again.json()["error"]
        [settled] = reader.get("/executions/p1/external").json()["externalWaits"]
        assert settled["status"] == "completed" and settled["settledAt"] >= settled["createdAt"]
        assert reader.get("/executions/nope/external").status_code == 404

        start = {"workflowId": "pay", "context": 600, "executionId": "p2"}
        assert admin.post("/executions/start", json=start).status_code == 201
        second = _token(tokens, 2)
        failure = {"token": second, "error": {"message": "card declined", "type": "Declined"}}
        assert reader.post("/completions/fail", json=failure).status_code == 403
        failed = admin.post("/completions/fail", json=failure)
        assert failed.status_code == 200 and failed.json() == {"status": "failed"}, failed.text
        assert wait_status(reader, "p2", {"succeeded"})["status"] == "succeeded"
        ended = reader.get("/executions/p2/events").json()["events"]
        [outcome] = [e["fields"] for e in ended if e["type"] == "ExternalCompleted"]
        assert outcome["status"] == "failed" and outcome["error"]["message"] == "card declined"
        assert admin.post("/completions/fail", json=failure).status_code == 409


def test_without_tokens_configured_anyone_may_complete(tmp_path: Path) -> None:
    (tmp_path / APP_FILE.name).write_text(APP_FILE.read_text())
    tokens = tmp_path / "tokens.txt"
    with (
        serve(tmp_path, "--app", "external_app:app", env={"TOKENS": str(tokens)}) as server,
        server.client() as api,
    ):
        start = {"workflowId": "pay", "context": None, "executionId": "p3"}
        assert api.post("/executions/start", json=start).status_code == 201
        done = api.post("/completions", json={"token": _token(tokens, 1), "result": "ok"})
        assert done.status_code == 200, done.text
        assert wait_status(api, "p3", {"succeeded"})["status"] == "succeeded"
