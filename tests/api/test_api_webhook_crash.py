"""Webhooks are delivered from the log, retried with backoff, never lost (issue 6), across a
real crash: `durable serve` (running the worker in-process) is killed with SIGKILL while a
webhook delivery is in flight or being retried, then started again on the same SQLite file.

The restarted server takes the run over once the dead process's lease expires (3 s: the servers
load an application whose App(lease_ttl=3) `serve` applies to its worker), sends the delivery
again with the same payload and Idempotency-Key, and finishes the run; the log records the
delivery once and no step before it runs again."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from loopback import Seen, Web, serving
from serving import Served, serve, server_env, wait_status

LEASE_WAIT = 40.0  # the dead server's lease (3 s) plus the delivery's backoff, with margin
SHORT_LEASE = "from sdk import App\n\napp = App('sqlite:///unused.db', lease_ttl=3.0)\n"


def serve_short_lease(workdir: Path, name: str) -> AbstractContextManager[Served]:
    """`durable serve` whose in-process worker holds 3 s leases (the app's), not 15 s."""
    (workdir / "short_lease.py").write_text(SHORT_LEASE)
    return serve(workdir, "--app", "short_lease:app", name=name)


DONE = "@webhook.on_complete"  # the deliveries' instance names in the log
FAILED = "@webhook.on_failure"


def flow(web: Web, hooks: dict[str, str], *, fail: bool = False) -> dict[str, Any]:
    """fetch (an HTTP side effect, counted by `web`) -> double -> load, which throws if `fail`."""
    load = "throw new Error('load failed')" if fail else "return deps.double + 1"
    return {
        "id": "crashy" if not fail else "crashy-fails",
        "name": "Crashy",
        "steps": [
            {
                "id": "fetch",
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
                "id": "load",
                "action": "transform",
                "params": {"code": load},
                "dependencies": ["double"],
            },
        ],
        "webhooks": hooks,
    }


def events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/executions/{run_id}/events")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["events"]
    return listed


def instance_events(log: list[dict[str, Any]], name: str) -> list[str]:
    """The types of the events of the step instance `name` (StepStarted names it; the others
    name its position)."""
    positions = {e["fields"]["pos"] for e in log if e["type"] == "StepStarted"}
    named = {e["fields"]["pos"] for e in log if e["fields"].get("name") == name}
    assert len(named) <= 1 and named <= positions, (name, log)
    return [e["type"] for e in log if named and e["fields"].get("pos") in named]


def stored(workdir: Path, *command: str) -> Any:
    """`durable <command> --json` on the database: what it holds, read while no server runs."""
    shown = subprocess.run(
        [sys.executable, "-m", "durable", *command, "--json"],
        cwd=workdir,
        env={**server_env(workdir), "DURABLE_DATABASE_URL": f"sqlite:///{workdir / 'runs.db'}"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr.decode(errors="replace")
    return json.loads(shown.stdout)


def wait_for(what: str, done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()  # SIGKILL: no lease given back, nothing flushed
    process.wait(timeout=10)


def test_on_complete_in_flight_at_sigkill_is_delivered_once_more(tmp_path: Path, web: Web) -> None:
    web.reply("/data", 200, "application/json", b'{"n": 20}')
    held = web.hold("/done")  # the first onComplete POST is received, never answered
    hooks = {"onComplete": f"{web.url}/done", "onStep": f"{web.url}/step"}
    with serve_short_lease(tmp_path, "first") as server, server.client() as api:
        assert api.post("/workflows", json=flow(web, hooks)).status_code == 201
        started = api.post("/executions/start", json={"workflowId": "crashy", "executionId": "r"})
        assert started.status_code == 201, started.text
        assert held.wait(30), server.output()
        kill(server.process)

    # The delivery never got its answer, so neither it nor the run can be recorded finished.
    before = stored(tmp_path, "runs", "show", "r")
    assert before["status"] == "running", before
    steps = {s["name"]: s["status"] for s in before["steps"]}
    assert [steps[s] for s in ("fetch", "double", "load")] == ["succeeded"] * 3, steps
    assert "StepCompleted" not in instance_events(stored(tmp_path, "events", "r"), DONE)
    [first] = web.seen("/done")

    with serve_short_lease(tmp_path, "second") as server, server.client() as api:
        wait_for("onComplete sent again", lambda: len(web.seen("/done")) == 2, LEASE_WAIT)
        done = wait_status(api, "r", {"succeeded", "failed", "partial"})
        log = events(api, "r")
    assert done["status"] == "succeeded", done
    assert done["stepResults"]["load"]["result"] == 41

    # The same notification again: same payload, same key, for the receiver to dedupe.
    again = web.seen("/done")[1]
    assert json.loads(again.body) == json.loads(first.body)
    assert json.loads(first.body)["event"] == "run.succeeded"
    assert "idempotency-key" in first.headers, first.headers
    assert again.headers["idempotency-key"] == first.headers["idempotency-key"]
    assert len(web.seen("/done")) == 2  # delivered once recorded: not a third time

    # The log: the delivery recorded completed exactly once, the run ended once, after it.
    delivery = instance_events(log, DONE)
    assert Counter(delivery)["StepCompleted"] == 1 and "StepFailed" not in delivery, delivery
    assert delivery[-1] == "StepCompleted", delivery
    ends = [e["type"] for e in log if e["type"] in ("RunCompleted", "RunFailed")]
    assert ends == ["RunCompleted"] and log[-1]["type"] == "RunCompleted", ends

    # Steps recorded before the kill did not run again: one fetch, one start per step.
    assert len(web.seen("/data")) == 1
    for step in ("fetch", "double", "load"):
        assert instance_events(log, step) == ["StepStarted", "StepCompleted"], step

    # onStep: every step notified at least once; distinct Idempotency-Keys = distinct steps.
    notes: list[Seen] = web.seen("/step")
    by_key = {s.headers.get("idempotency-key"): json.loads(s.body)["step"]["id"] for s in notes}
    assert None not in by_key and sorted(by_key.values()) == ["double", "fetch", "load"], by_key


def test_on_failure_to_a_receiver_down_across_sigkill_is_delivered_when_it_comes_up(
    tmp_path: Path, web: Web
) -> None:
    web.reply("/data", 200, "application/json", b'{"n": 20}')
    # The receiver's port is bound but not listening: connections are refused until it is
    # served, after the restart.
    receiver = socket.socket()
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    hooks = {"onFailure": f"http://127.0.0.1:{port}/failed"}

    def delivery(api: httpx.Client) -> list[str]:
        return instance_events(events(api, "f"), FAILED)

    try:
        with serve_short_lease(tmp_path, "first") as server, server.client() as api:
            definition = flow(web, hooks, fail=True)
            assert api.post("/workflows", json=definition).status_code == 201
            start = {"workflowId": "crashy-fails", "executionId": "f"}
            assert api.post("/executions/start", json=start).status_code == 201
            # Refused, and retried with backoff (1 s, 2 s, ...): kill it between attempts.
            wait_for("a refused attempt", lambda: "StepFailed" in delivery(api), 30)
            kill(server.process)
        assert stored(tmp_path, "runs", "show", "f")["status"] == "running"
        before = Counter(instance_events(stored(tmp_path, "events", "f"), FAILED))
        assert before["StepFailed"] >= 1 and before["StepCompleted"] == 0, before

        with serve_short_lease(tmp_path, "second") as server, server.client() as api:
            # Still refused once the restarted server has taken the run over...
            wait_for(
                "a refused attempt after the restart",
                lambda: Counter(delivery(api))["StepFailed"] > before["StepFailed"],
                LEASE_WAIT,
            )
            # ...then the receiver comes up, and the next attempt gets through.
            with serving(Web(), receiver) as late:
                done = wait_status(api, "f", {"succeeded", "failed", "partial"}, timeout=30)
                log = events(api, "f")
    finally:
        receiver.close()
    # Partial: fetch and double succeeded. onFailure fires for failed and partial runs.
    assert done["status"] == "partial" and done["failedSteps"] == ["load"], done
    [seen] = late.seen("/failed")
    assert seen.headers.get("idempotency-key", "").startswith("f:"), seen.headers
    posted = json.loads(seen.body)
    assert posted["event"] == "run.partial" and posted["failed_steps"] == ["load"], posted
    types = instance_events(log, FAILED)
    assert Counter(types)["StepCompleted"] == 1 and types[-1] == "StepCompleted", types
    # The backoff went on across the crash (1 s, 2 s, ...), not restarting from the first delay.
    [pos] = {e["fields"]["pos"] for e in log if e["fields"].get("name") == FAILED}
    refusals = [e for e in log if e["type"] == "StepFailed" and e["fields"]["pos"] == pos]
    delays = [round(e["fields"]["next_attempt_at"] - e["at"] / 1000) for e in refusals]
    assert len(delays) >= 2 and delays == [2**i for i in range(len(delays))], delays
    ends = [e["type"] for e in log if e["type"] in ("RunCompleted", "RunFailed")]
    assert ends == ["RunCompleted"] and log[-1]["type"] == "RunCompleted", ends  # partial
    assert len(web.seen("/data")) == 1
