"""The HTTP API through a real `durable serve` process on a real SQLite file: 003's endpoints
with its shapes, the additions (cancel, signals, events as JSON and as a live SSE stream,
health), webhooks delivered from the log, tokens, limits and every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from loopback import Web
from serving import REPO, serve, server_env, wait_status

ORDER_FLOW = REPO / "tests" / "dag" / "examples" / "order_flow.json"
JSON = {"Content-Type": "application/json"}  # raw bodies must say so (see test_api_cross_site)

APP = textwrap.dedent(
    """
    from sdk import App, Context

    app = App("sqlite:///unused.db")

    @app.workflow(name="approval")
    async def approval(ctx: Context, request: dict) -> dict:
        decision = await ctx.wait_for_signal("decide")
        return {"request": request, "decision": decision}
    """
)


def pipeline(web: Web, **hooks: str) -> dict[str, Any]:
    return {
        "id": "pipeline",
        "name": "Pipeline",
        "description": "fetch, then two transforms, then load",
        "steps": [
            {
                "id": "fetch",
                "name": "Fetch",
                "action": "http.request",
                "params": {"url": f"{web.url}/data", "method": "GET"},
            },
            {
                "id": "double",
                "action": "transform",
                "params": {"inputKey": "fetch", "code": "return input.n * 2"},
                "dependencies": ["fetch"],
            },
            {
                "id": "wait",
                "action": "delay",
                "params": {"duration": 200},
                "dependencies": ["fetch"],
            },
            {
                "id": "load",
                "action": "transform",
                "params": {"code": "return deps.double + 1"},
                "dependencies": ["double", "wait"],
            },
        ],
        "webhooks": hooks,
    }


def test_the_003_flow_register_start_watch_visualize(tmp_path: Path, web: Web) -> None:
    web.reply("/data", 200, "application/json", b'{"n": 20}')
    web.fail_first("/done", 2)  # the onComplete webhook is retried until it gets through
    definition = pipeline(web, onComplete=f"{web.url}/done", onStep=f"{web.url}/step")
    with serve(tmp_path) as server, server.client() as api:
        created = api.post("/workflows", json=definition)
        assert created.status_code == 201, created.text
        assert created.json()["id"] == "pipeline" and created.json()["version"] == "1"
        again = api.post("/workflows", json=definition)
        assert again.status_code == 200 and again.json()["created"] is False
        definition["steps"][3]["params"]["code"] = "return deps.double + 2"
        changed = api.post("/workflows", json=definition)
        assert changed.status_code == 201 and changed.json()["version"] == "2"

        listed = api.get("/workflows").json()["workflows"]
        assert [(w["id"], w["version"], w["versions"], w["kind"]) for w in listed] == [
            ("pipeline", "2", ["1", "2"], "dag")
        ]
        one = api.get("/workflows/pipeline", params={"version": "1"}).json()
        assert one["version"] == "1" and one["definition"]["steps"][3]["params"]["code"] == (
            "return deps.double + 1"
        )
        assert [v["registered"] for v in one["versions"]] == ["api", "api"]

        start = {"workflowId": "pipeline", "context": {"orderId": "o-1"}, "version": "1"}
        started = api.post("/executions/start", json={**start, "executionId": "e-1"})
        assert started.status_code == 201 and started.json() == {"executionId": "e-1"}
        repeated = api.post("/executions/start", json={**start, "executionId": "e-1"})
        assert repeated.status_code == 200 and repeated.json() == {"executionId": "e-1"}

        done = wait_status(api, "e-1", {"succeeded", "failed", "partial"})
        assert done["status"] == "succeeded", done
        assert done["completedSteps"] == ["fetch", "double", "wait", "load"]
        assert done["currentSteps"] == [] and done["failedSteps"] == []
        assert done["stepResults"]["load"]["result"] == 41
        assert done["stepResults"]["double"] == {
            "stepId": "double",
            "status": "success",
            "attempts": 1,
            "duration": done["stepResults"]["double"]["duration"],
            "result": 40,
            "error": None,
            "usage": None,  # no model request (tests/api/test_usage_api.py)
            "resources": None,  # no script
        }
        assert done["stepResults"]["wait"]["duration"] >= 200
        assert done["context"]["orderId"] == "o-1" and done["context"]["double"] == 40
        assert isinstance(done["startTime"], int) and done["duration"] >= 200

        picture = api.get("/executions/e-1/visualize").json()
        assert picture["workflowName"] == "Pipeline" and picture["status"] == "succeeded"
        deps = {s["id"]: s["dependencies"] for s in picture["steps"]}
        assert deps == {
            "fetch": [],
            "double": ["fetch"],
            "wait": ["fetch"],
            "load": ["double", "wait"],
        }

        newest = api.post("/executions/start", json={"workflowId": "pipeline"}).json()
        finished = wait_status(api, newest["executionId"], {"succeeded", "failed"})
        assert finished["version"] == "2" and finished["stepResults"]["load"]["result"] == 42

        deadline = time.monotonic() + 20
        while len(web.seen("/done")) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    done_calls = web.seen("/done")
    assert len(done_calls) == 4  # run 1: two 500s, then delivered; run 2: delivered at once
    assert {json.loads(c.body)["run_id"] for c in done_calls[2:]} == {"e-1", newest["executionId"]}
    assert len(web.seen("/step")) == 8  # onStep: every step of both runs


def test_listing_is_filtered_and_paginated(tmp_path: Path, web: Web) -> None:
    web.reply("/data", 200, "application/json", b'{"n": 1}')
    with serve(tmp_path, "--no-worker") as server, server.client() as api:
        assert api.post("/workflows", json=pipeline(web)).status_code == 201
        ids = [f"p-{i}" for i in range(5)]
        for run_id in ids:
            body = {"workflowId": "pipeline", "executionId": run_id}
            assert api.post("/executions/start", json=body).status_code == 201
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "workflowId": "pipeline"}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/executions", params=params).json()
            seen += [e["executionId"] for e in page["executions"]]
            assert len(page["executions"]) <= 2
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]  # newest first, each once
        assert api.get("/executions", params={"status": "succeeded"}).json()["executions"] == []
        pending = api.get("/executions", params={"status": "pending"}).json()["executions"]
        assert len(pending) == 5 and all(e["status"] == "pending" for e in pending)
        assert api.get("/executions", params={"workflowId": "other"}).json()["executions"] == []
        bad = api.get("/executions", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400 and "cursor" in bad.json()["error"]
        assert api.get("/executions", params={"status": "weird"}).status_code == 400


def test_signals_cancel_and_the_live_event_stream(tmp_path: Path) -> None:
    (tmp_path / "approvals.py").write_text(APP)
    with serve(tmp_path, "--app", "approvals:app") as server, server.client() as api:
        start = {"workflowId": "approval", "context": {"amount": 5}, "executionId": "a-1"}
        assert api.post("/executions/start", json=start).status_code == 201
        assert api.post("/executions/start", json={**start, "executionId": "a-2"}).is_success
        wait_status(api, "a-1", {"running", "pending"})
        types: list[str] = []
        with (
            httpx.Client(base_url=server.url, timeout=30) as streaming,
            streaming.stream(
                "GET", "/executions/a-1/events", headers={"Accept": "text/event-stream"}
            ) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            sent = False
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    types.append(line.split(":", 1)[1].strip())
                    if not sent and types[-1] == "WaitStarted":
                        signal = api.post("/executions/a-1/signals/decide", json="yes")
                        assert signal.status_code == 202, signal.text
                        sent = True
        assert types[0] == "RunStarted" and types[-1] == "RunCompleted"
        assert "SignalReceived" in types and "WaitCompleted" in types
        done = wait_status(api, "a-1", {"succeeded"})
        assert api.get("/executions/a-1").json()["status"] == done["status"]
        events = api.get("/executions/a-1/events").json()["events"]
        assert [e["type"] for e in events] == types
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        later = api.get("/executions/a-1/events", params={"after": 3}).json()["events"]
        assert [e["seq"] for e in later] == list(range(4, len(events) + 1))

        cancelled = api.post("/executions/a-2/cancel", json={"reason": "no longer needed"})
        assert cancelled.status_code == 202
        assert wait_status(api, "a-2", {"cancelled"})["status"] == "cancelled"
        too_late = api.post("/executions/a-2/signals/decide", json="yes")
        assert too_late.status_code == 409 and "already ended cancelled" in too_late.json()["error"]
        assert api.post("/executions/a-2/cancel").status_code == 409


def test_bad_input_gets_clear_4xx_answers(tmp_path: Path) -> None:
    with serve(tmp_path, "--max-body", "4096") as server, server.client() as api:
        bad = api.post(
            "/workflows",
            json={"id": "w", "steps": [{"id": "a"}, {"id": "b", "dependencies": ["nope"]}]},
        )
        assert bad.status_code == 422
        problem = bad.json()["problems"][0]
        assert problem["path"] == "$.steps[1].dependencies[0]" and "nope" in problem["message"]
        typo = api.post(
            "/workflows",
            json={"id": "w", "steps": [{"id": "a", "retryPolicy": {"maxAttempts": 0}}]},
        )
        assert typo.status_code == 422 and "maxAttempts" in typo.json()["problems"][0]["path"]
        cycle = api.post(
            "/workflows",
            json={
                "id": "c",
                "steps": [{"id": "a", "dependencies": ["b"]}, {"id": "b", "dependencies": ["a"]}],
            },
        )
        assert cycle.status_code == 422 and "cycle" in cycle.json()["error"]
        assert api.post("/workflows", content=b"{not json", headers=JSON).status_code == 422
        assert api.post("/workflows", content=b"").status_code == 400
        assert api.post("/workflows", content=b"\xff\xfe", headers=JSON).status_code == 400
        big = api.post("/workflows", content=b"{" + b" " * 5000 + b"}", headers=JSON)
        assert big.status_code == 413
        conflict = api.post("/workflows", json={"id": "w", "version": "1", "steps": [{"id": "a"}]})
        assert conflict.status_code == 201
        changed = api.post("/workflows", json={"id": "w", "version": "1", "steps": [{"id": "b"}]})
        assert changed.status_code == 409 and "new version" in changed.json()["error"]

        unknown = api.post("/executions/start", json={"workflowId": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
        assert api.post("/executions/start", json={"workflow": "w"}).status_code == 400
        assert api.post("/executions/start", json=["w"]).status_code == 400
        assert api.post("/executions/start", json={"workflowId": ""}).status_code == 400
        assert (
            api.post("/executions/start", json={"workflowId": "w", "version": "9"}).status_code
            == 404
        )
        assert api.get("/executions/missing").status_code == 404
        assert api.get("/executions/missing/visualize").status_code == 404
        assert api.get("/executions/missing/events").status_code == 404
        assert api.post("/executions/missing/cancel").status_code == 404
        assert api.post("/executions/missing/signals/x", json=1).status_code == 404
        assert api.get("/workflows/missing").status_code == 404
        assert api.get("/workflows/w", params={"version": "7"}).status_code == 404
        started = api.post("/executions/start", json={"workflowId": "w", "executionId": "x"})
        assert started.status_code == 201
        other = api.post("/workflows", json={"id": "v", "steps": [{"id": "a"}]})
        assert other.status_code == 201
        clash = api.post("/executions/start", json={"workflowId": "v", "executionId": "x"})
        assert clash.status_code == 409
        assert (
            api.post("/executions/x/signals/s", content=b"{oops", headers=JSON).status_code == 400
        )
        assert api.get("/nowhere").status_code == 404
        assert api.get("/openapi.json").json()["paths"]["/executions/start"]["post"]
        assert "executions/start" in api.get("/docs").text


def test_tokens_read_only_and_admin(tmp_path: Path) -> None:
    admin, reader = "a" * 32, "r" * 32
    env = {"DURABLE_API_TOKEN": admin, "DURABLE_API_READ_TOKEN": reader}
    with serve(tmp_path, env=env) as server:
        with server.client() as anonymous:
            assert anonymous.get("/health").status_code == 200  # for load balancers
            denied = anonymous.get("/executions")
            assert denied.status_code == 401 and "Bearer" in denied.json()["error"]
            assert anonymous.get("/").status_code == 200  # the dashboard asks for a token
        with server.client("wrong-token-wrong-token") as wrong:
            assert wrong.get("/executions").status_code == 401
        with server.client(reader) as read:
            assert read.get("/executions").status_code == 200
            no = read.post("/workflows", json={"id": "w", "steps": [{"id": "a"}]})
            assert no.status_code == 403 and "read-only" in no.json()["error"]
        with server.client(admin) as write:
            assert write.post("/workflows", json={"id": "w", "steps": [{"id": "a"}]}).is_success
            assert write.get("/workflows").json()["workflows"][0]["id"] == "w"


def test_no_token_means_loopback_only(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "durable", "serve", "--host", "0.0.0.0", "--port", "0"]
    refused = subprocess.run(
        [*command, "--db", f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(tmp_path),
    )
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 with no API token" in refused.stderr
    short = subprocess.run(
        [*command, "--db", f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(tmp_path, {"DURABLE_API_TOKEN": "short"}),
    )
    assert short.returncode == 2 and "at least 16 characters" in short.stderr
