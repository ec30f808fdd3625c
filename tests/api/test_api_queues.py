"""/queues through a real `durable serve --app`: the declared queue with its limits and depth
(a read token suffices), queued starts through /executions/start (the reason a run waits, a
duplicate refused with 409 naming the run, an undeclared queue refused with 400), a clear
404 for an unknown queue, and a run's place in its queue on GET /executions/{id}."""

from __future__ import annotations

from pathlib import Path

from serving import serve, wait_status

ADMIN, READER = "a" * 32, "r" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}
# Rate-limited to 1 start a day: the second run stays queued while the test looks.
APP = """
from sdk import App, Context

app = App(poll_interval=0.2)
app.queue("emails", concurrency=10, worker_concurrency=2, rate_limit=(1, 86400.0))


@app.workflow
async def email(ctx: Context, n: int) -> int:
    return n
"""


def test_queues_over_http(tmp_path: Path) -> None:
    (tmp_path / "queue_app.py").write_text(APP)
    with (
        serve(tmp_path, "--app", "queue_app:app", env=TOKENS) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as reader,
        server.client() as anonymous,
    ):
        listed = reader.get("/queues")
        assert listed.status_code == 200, listed.text
        (emails,) = listed.json()["queues"]
        assert (emails["name"], emails["concurrency"], emails["workerConcurrency"]) == (
            "emails",
            10,
            2,
        )
        assert (emails["rateLimit"], emails["ratePeriodMs"]) == (1, 86_400_000)
        assert anonymous.get("/queues").status_code == 401
        missing = reader.get("/queues/nope")
        assert missing.status_code == 404
        assert "no queue 'nope'" in missing.json()["error"]
        one = reader.get("/queues/emails")
        assert one.status_code == 200 and one.json()["whyWaiting"] is None

        # Queued starts: the first is admitted and runs, the second waits for the rate.
        first = admin.post(
            "/executions/start",
            json={"workflowId": "email", "context": 1, "queue": "emails", "dedupeKey": "o-1"},
        )
        assert first.status_code == 201, first.text
        wait_status(reader, first.json()["executionId"], {"succeeded"})
        second = admin.post(
            "/executions/start", json={"workflowId": "email", "context": 2, "queue": "emails"}
        )
        assert second.status_code == 201, second.text
        waiting = reader.get("/queues/emails").json()
        assert (waiting["waiting"], waiting["admittedRecently"]) == (1, 1)
        assert waiting["whyWaiting"] == "queued: emails is at its rate limit 1 per 86400 s"

        third = admin.post(
            "/executions/start",
            json={"workflowId": "email", "context": 3, "queue": "emails", "dedupeKey": "k"},
        )
        dup = admin.post(
            "/executions/start",
            json={"workflowId": "email", "context": 4, "queue": "emails", "dedupeKey": "k"},
        )
        assert dup.status_code == 409 and third.json()["executionId"] in dup.json()["error"]
        undeclared = admin.post(
            "/executions/start", json={"workflowId": "email", "context": 5, "queue": "bulk"}
        )
        assert undeclared.status_code == 400
        assert "queue 'bulk' is not declared" in undeclared.json()["error"]

        # A run's place, on its page: the admitted one says when, the waiting ones why and
        # how many runs come before them (by priority, then age).
        urgent = admin.post(
            "/executions/start",
            json={
                "workflowId": "email",
                "context": 6,
                "queue": "emails",
                "priority": 5,
                "partitionKey": "tenant-<i>7",
            },
        )
        assert urgent.status_code == 201, urgent.text
        place = reader.get(f"/executions/{first.json()['executionId']}").json()["queue"]
        assert place["name"] == "emails" and isinstance(place["admittedAt"], int)
        assert (place["ahead"], place["whyWaiting"], place["dedupeKey"]) == (None, None, "o-1")
        place = reader.get(f"/executions/{third.json()['executionId']}").json()["queue"]
        assert place == {
            "name": "emails",
            "priority": 0,
            "partitionKey": None,
            "dedupeKey": "k",
            "admittedAt": None,
            "ahead": 2,  # the second (older) and the urgent one (higher priority)
            "whyWaiting": "queued: emails is at its rate limit 1 per 86400 s; 2 runs ahead",
        }
        place = reader.get(f"/executions/{urgent.json()['executionId']}").json()["queue"]
        assert (place["priority"], place["partitionKey"], place["ahead"]) == (
            5,
            "tenant-<i>7",
            0,
        )
        assert place["whyWaiting"].endswith("; no run ahead")

        # The queue's own page: its waiting runs in the order they come, at most `limit`.
        detail = reader.get("/queues/emails").json()
        ids = [second.json()["executionId"], third.json()["executionId"]]
        assert [r["executionId"] for r in detail["waitingRuns"]] == [
            urgent.json()["executionId"],
            *ids,
        ]
        top = detail["waitingRuns"][0]
        assert (top["workflowId"], top["status"], top["priority"]) == ("email", "pending", 5)
        assert (top["partitionKey"], top["admittedAt"]) == ("tenant-<i>7", None)
        assert isinstance(top["readyAt"], int) and isinstance(top["startTime"], int)
        assert detail["admittedRuns"] == []  # the first has ended: it holds no slot
        assert (detail["waiting"], detail["whyWaiting"]) == (3, waiting["whyWaiting"])
        assert len(reader.get("/queues/emails?limit=1").json()["waitingRuns"]) == 1
        assert reader.get("/queues/emails?limit=0").status_code == 400
        assert anonymous.get("/queues/emails").status_code == 401
        assert anonymous.get(f"/executions/{ids[0]}").status_code == 401


def test_a_run_outside_a_queue_has_no_place(tmp_path: Path) -> None:
    (tmp_path / "queue_app.py").write_text(APP)
    with serve(tmp_path, "--app", "queue_app:app") as server, server.client() as api:
        started = api.post("/executions/start", json={"workflowId": "email", "context": 1})
        assert started.status_code == 201, started.text
        done = wait_status(api, started.json()["executionId"], {"succeeded"})
        assert done["queue"] is None
        schema = api.get("/openapi.json").json()["components"]["schemas"]
        detail = next(v for k, v in schema.items() if k.endswith("ExecutionDetail"))
        place = next(v for k, v in schema.items() if k.endswith("QueuePlace"))
        assert "queue" in detail["properties"]
        assert set(place["properties"]) == {
            "name",
            "priority",
            "partitionKey",
            "dedupeKey",
            "admittedAt",
            "ahead",
            "whyWaiting",
        }


def test_cancelling_a_waiting_run_over_http_ends_it_at_once(tmp_path: Path) -> None:
    """POST /executions/{id}/cancel of a run waiting for its queue's rate: an admin token's
    request ends it cancelled before the answer ("cancelled", not "cancelling"); a reader's
    is refused and changes nothing."""
    (tmp_path / "queue_app.py").write_text(APP)
    with (
        serve(tmp_path, "--app", "queue_app:app", env=TOKENS) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as reader,
    ):
        start = {"workflowId": "email", "context": 1, "queue": "emails"}
        first = admin.post("/executions/start", json=start)
        wait_status(reader, first.json()["executionId"], {"succeeded"})
        waiting = admin.post("/executions/start", json={**start, "context": 2}).json()
        run_id = waiting["executionId"]
        assert reader.get("/queues/emails").json()["waiting"] == 1
        refused = reader.post(f"/executions/{run_id}/cancel", json={"reason": "no"})
        assert refused.status_code in (401, 403)
        assert reader.get(f"/executions/{run_id}").json()["status"] == "pending"
        cancelled = admin.post(f"/executions/{run_id}/cancel", json={"reason": "not needed"})
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert reader.get(f"/executions/{run_id}").json()["status"] == "cancelled"
        assert reader.get("/queues/emails").json()["waiting"] == 0
        events = reader.get(f"/executions/{run_id}/events").json()["events"]
        assert [e["type"] for e in events] == ["RunStarted", "CancelRequested", "RunCancelled"]
        again = admin.post(f"/executions/{run_id}/cancel")
        assert again.status_code == 409 and "already ended cancelled" in again.json()["error"]
