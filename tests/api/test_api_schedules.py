"""/schedules through a real `durable serve --app` (its worker fires and runs them): listing
with next fire times (a read token suffices), pause/resume/trigger/backfill (an admin token),
clear 4xx errors for unknown schedules and bad ranges."""

from __future__ import annotations

import time
from pathlib import Path

from serving import serve, wait_status

ADMIN, READER = "a" * 32, "r" * 32
TOKENS = {"DURABLE_API_TOKEN": ADMIN, "DURABLE_API_READ_TOKEN": READER}
APP = """
from typing import Any
from sdk import App, Context

app = App(poll_interval=0.2)


@app.schedule("0 3 * * *", timezone="Europe/Berlin", name="nightly", overlap="allow")
@app.workflow
async def report(ctx: Context, tick: dict[str, Any]) -> str:
    return str(tick["scheduled_at"])
"""


def test_schedules_over_http(tmp_path: Path) -> None:
    (tmp_path / "sched_app.py").write_text(APP)
    with (
        serve(tmp_path, "--app", "sched_app:app", env=TOKENS) as server,
        server.client(ADMIN) as admin,
        server.client(READER) as reader,
        server.client() as anonymous,
    ):
        listed = reader.get("/schedules")
        assert listed.status_code == 200, listed.text
        (nightly,) = listed.json()["schedules"]
        assert nightly["name"] == "nightly" and nightly["timezone"] == "Europe/Berlin"
        assert nightly["paused"] is False and nightly["nextRunAt"] > time.time() * 1000
        assert reader.get("/schedules/nightly").json() == nightly

        assert anonymous.post("/schedules/nightly/pause").status_code == 401
        read_only = reader.post("/schedules/nightly/pause")
        assert read_only.status_code == 403 and "read-only" in read_only.json()["error"]
        paused = admin.post("/schedules/nightly/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True
        assert paused.json()["nextRunAt"] is None
        resumed = admin.post("/schedules/nightly/resume")
        assert resumed.json()["nextRunAt"] == nightly["nextRunAt"]

        triggered = admin.post("/schedules/nightly/trigger")
        assert triggered.status_code == 202, triggered.text
        run_id = triggered.json()["executionId"]
        assert run_id.startswith("nightly@")
        wait_status(reader, run_id, {"succeeded"})

        body = {"start": "2026-03-28T00:00:00+01:00", "end": "2026-03-30T00:00:00+02:00"}
        filled = admin.post("/schedules/nightly/backfill", json=body)
        assert filled.status_code == 202, filled.text
        assert filled.json()["executionIds"] == [
            "nightly@2026-03-28T02:00:00Z",
            "nightly@2026-03-29T01:00:00Z",  # 03:00 CEST, after the spring-forward night
        ]
        for rid in filled.json()["executionIds"]:
            wait_status(reader, rid, {"succeeded"})

        unknown = admin.post("/schedules/weekly/pause")
        assert (
            unknown.status_code == 404 and "no schedule named 'weekly'" in unknown.json()["error"]
        )
        assert reader.get("/schedules/weekly").status_code == 404
        for bad, says in (
            ({"start": "yesterday", "end": "2026-03-30T00:00Z"}, "is not a time"),
            ({"start": "2026-03-30T00:00Z", "end": "2026-03-28T00:00Z"}, "end is before"),
            ({"start": 1e300, "end": 1e301}, "is not a time"),
            ({"start": "2000-01-01T00:00Z", "end": "2026-01-01T00:00Z"}, "more than 1000"),
        ):
            answer = admin.post("/schedules/nightly/backfill", json=bad)
            assert answer.status_code == 400 and says in answer.json()["error"], answer.text
        assert admin.post("/schedules/nightly/backfill", json={"start": 1}).status_code == 400


def test_a_json_definition_posted_with_a_schedule_is_fired(tmp_path: Path) -> None:
    """`schedule:` in a definition registered over HTTP: a bad one is a 422 naming where it
    is; a good one is followed by the server's worker and fires, one run per tick."""
    steps = [{"id": "a", "action": "transform", "params": {"code": "return 1"}}]
    with serve(tmp_path, env=TOKENS) as server, server.client(ADMIN) as admin:
        bad = {"id": "beat", "schedule": {"cron": "* * * * * *", "timezone": "Mars/Base"}}
        refused = admin.post("/workflows", json={**bad, "steps": steps})
        assert refused.status_code == 422, refused.text  # as every definition problem
        (problem,) = refused.json()["problems"]
        assert (
            problem["path"] == "$.schedule" and "unknown timezone 'Mars/Base'" in problem["message"]
        )

        good = {"id": "beat", "schedule": {"cron": "* * * * * *", "overlap": "allow"}}
        assert admin.post("/workflows", json={**good, "steps": steps}).status_code == 201
        deadline = time.monotonic() + 30
        while True:
            runs = admin.get("/executions", params={"workflowId": "beat"}).json()["executions"]
            done = [r for r in runs if r["status"] == "succeeded"]
            if len(done) >= 2:
                break
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        assert all(r["executionId"].startswith("beat@") for r in runs)
        (listed,) = admin.get("/schedules").json()["schedules"]
        assert listed["name"] == "beat" and listed["lastRunId"].startswith("beat@")
