"""Events and queries over HTTP and the CLI: `durable serve --app --no-worker` with tokens and a
`durable worker` subprocess share a SQLite file; a read token may read values and ask queries
(a POST that changes nothing), no token gets 401; bad requests get 4xx with the reason. The
CLI's `durable runs event` and `durable runs query` read the same run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from talkprocs import serving, talk

ADMIN, READER = "a" * 32, "r" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}


def until_phase(api: httpx.Client, run_id: str, phase: str) -> None:
    deadline = time.monotonic() + 60
    seen = None
    while time.monotonic() < deadline:
        answer = api.post(f"/executions/{run_id}/queries/state", json={})
        assert answer.status_code == 200, answer.text
        seen = answer.json()["result"]["phase"]
        if seen == phase:
            return
        time.sleep(0.1)
    raise AssertionError(f"never reached {phase!r} (last {seen!r})")


def test_http_and_cli(tmp_path: Path) -> None:
    with (
        talk(tmp_path) as work,
        serving(tmp_path, "--app", "wfmod:app", "--no-worker", env=TOKENS) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as read,
        server.client() as anonymous,
    ):
        start = {"workflowId": "talker", "context": 41, "executionId": "h-1"}
        assert admin.post("/executions/start", json=start).status_code == 201
        work.spawn()
        total = read.get("/executions/h-1/values/total", params={"wait": 30})
        assert total.status_code == 200, (total.text, work.log())
        assert total.json()["key"] == "total" and total.json()["value"] == 42
        assert total.json()["seq"] > 1 and total.json()["updatedAt"] > 0
        listed = read.get("/executions/h-1/values").json()
        assert listed["values"] == {"phase": "started", "total": 42}
        assert [e["key"] for e in listed["entries"]] == ["phase", "total"]

        until_phase(read, "h-1", "holding")
        plus = read.post("/executions/h-1/queries/plus", json={"args": [8]})
        assert plus.status_code == 200 and plus.json() == {"result": 50}
        step = read.post("/executions/h-1/queries/step", json={"args": []})
        assert step.status_code == 422 and "called step 'add'" in step.json()["error"]
        nope = read.post("/executions/h-1/queries/nope", json={})
        assert nope.status_code == 422
        assert "'plus', 'state', 'step'" in nope.json()["error"]
        bad_args = read.post("/executions/h-1/queries/plus", json={"args": [1, 2, 3]})
        assert bad_args.status_code == 422 and "TypeError" in bad_args.json()["error"]
        assert read.post("/executions/h-1/queries/state", json={"argz": []}).status_code == 400
        plain = read.post(
            "/executions/h-1/queries/state", content=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415
        assert read.post("/executions/h-1/queries/state").status_code == 200  # no body: no args

        assert anonymous.get("/executions/h-1/values").status_code == 401
        assert anonymous.get("/executions/h-1/values/total").status_code == 401
        assert anonymous.post("/executions/h-1/queries/state", json={}).status_code == 401
        # A read token's POSTs stay read-only elsewhere.
        assert read.post("/executions/h-1/signals/finish", json=1).status_code == 403

        assert read.get("/executions/missing/values").status_code == 404
        assert read.get("/executions/missing/values/k").status_code == 404
        assert read.post("/executions/missing/queries/state", json={}).status_code == 404
        unset = read.get("/executions/h-1/values/nope", params={"wait": 0.2})
        assert unset.status_code == 404 and "not set" in unset.json()["error"]
        assert read.get("/executions/h-1/values/k", params={"wait": 61}).status_code == 400

        cli = work.env.cli
        shown = cli("runs", "event", "h-1", "total", "--wait", "10")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == 42
        detailed = json.loads(cli("runs", "event", "h-1", "total", "--json").stdout)
        assert detailed["key"] == "total" and detailed["value"] == 42
        missing = cli("runs", "event", "h-1", "nope", "--wait", "0.2")
        assert missing.returncode == 3 and "has not set event 'nope'" in missing.stderr
        asked = cli("runs", "query", "h-1", "plus", "8", "--app", "wfmod:app")
        assert asked.returncode == 0, asked.stderr
        assert json.loads(asked.stdout) == 50
        refused = cli("runs", "query", "h-1", "step", "--app", "wfmod:app")
        assert refused.returncode == 2 and "called step 'add'" in refused.stderr
        assert "Traceback" not in refused.stderr
        not_json = cli("runs", "query", "h-1", "plus", "eight", "--app", "wfmod:app")
        assert not_json.returncode == 2 and "is not JSON" in not_json.stderr
        unknown = cli("runs", "event", "nobody", "k")
        assert unknown.returncode == 2 and "no run with id 'nobody'" in unknown.stderr

        work.release()
        until_phase(read, "h-1", "waiting")
        assert admin.post("/executions/h-1/signals/finish", json=1).status_code == 202
        deadline = time.monotonic() + 60
        while admin.get("/executions/h-1").json()["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ended = read.get("/executions/h-1/values/nope", params={"wait": 5})
        assert ended.status_code == 409 and "without setting event 'nope'" in ended.json()["error"]
        never = cli("runs", "event", "h-1", "nope")
        assert never.returncode == 4 and "ended (succeeded)" in never.stderr
        done = read.post("/executions/h-1/queries/state", json={})
        assert done.json()["result"] == {"total": 42, "phase": "done", "note": "ok"}
