"""`durable schedules ...` against a real SQLite file, with a real worker process executing
what the commands start; bad input gets a one-line error and exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from procenv import Env, until

WORKFLOWS = """
from typing import Any
from sdk import App, Context

app = App(poll_interval=0.2)


@app.schedule("0 3 * * *", timezone="Europe/Berlin", name="nightly")
@app.workflow
async def report(ctx: Context, tick: dict[str, Any]) -> str:
    return str(tick["scheduled_at"])
"""


def listed(env: Env) -> list[dict[str, object]]:
    done = env.cli("schedules", "list", "--json")
    assert done.returncode == 0, done.stderr
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found


def test_list_pause_resume_trigger_backfill(tmp_path: Path) -> None:
    env = Env(tmp_path, WORKFLOWS)
    with env.worker(""):
        until(
            lambda: (
                (tmp_path / "runs.db").exists()
                and env.cli("schedules", "list").returncode == 0
                and bool(listed(env))
            ),
            60,
            "the schedule",
        )
        (nightly,) = listed(env)
        assert (nightly["name"], nightly["cron"], nightly["timezone"]) == (
            "nightly",
            "0 3 * * *",
            "Europe/Berlin",
        )
        assert str(nightly["next_run"]).endswith(":00:00Z") and nightly["paused"] is False
        table = env.cli("schedules", "list")
        assert "nightly" in table.stdout and str(nightly["next_run"]) in table.stdout

        paused = env.cli("schedules", "pause", "nightly")
        assert paused.returncode == 0 and "schedule nightly paused" in paused.stdout
        assert listed(env)[0]["paused"] is True and listed(env)[0]["next_run"] is None
        assert "paused" in env.cli("schedules", "list").stdout
        resumed = env.cli("schedules", "resume", "nightly")
        assert resumed.returncode == 0 and str(nightly["next_run"]) in resumed.stdout

        triggered = env.cli("schedules", "trigger", "nightly", "--app", "wfmod:app")
        assert triggered.returncode == 0, triggered.stderr
        run_id = triggered.stdout.strip()
        assert run_id.startswith("nightly@")
        filled = env.cli(
            "schedules",
            "backfill",
            "nightly",
            "--from",
            "2026-10-24T00:00:00+02:00",
            "--to",
            "2026-10-26T00:00:00+01:00",
            "--app",
            "wfmod:app",
        )
        assert filled.returncode == 0, filled.stderr
        # 03:00 Berlin: CEST (01:00 UTC) before the fall-back night, CET (02:00 UTC) after.
        assert filled.stdout.split() == [
            "nightly@2026-10-24T01:00:00Z",
            "nightly@2026-10-25T02:00:00Z",
        ]
        wanted = {run_id, *filled.stdout.split()}
        until(
            lambda: all(env.runs().get(r, {}).get("status") == "succeeded" for r in wanted),
            30,
            "the worker to run them",
        )


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    env = Env(tmp_path, WORKFLOWS)
    with env.worker(""):
        until(
            lambda: (
                (tmp_path / "runs.db").exists()
                and env.cli("schedules", "list").returncode == 0
                and bool(listed(env))
            ),
            60,
            "the schedule",
        )
    cases = [
        (
            ("schedules", "pause", "weekly"),
            "no schedule named 'weekly': the schedules are ['nightly']",
        ),
        (("schedules", "trigger", "nightly"), "pass --app MODULE:APP"),
        (
            (
                "schedules",
                "backfill",
                "nightly",
                "--from",
                "yesterday",
                "--to",
                "today",
                "--app",
                "wfmod:app",
            ),
            "start: 'yesterday' is not a time from 1970 to 9999; give ISO 8601",
        ),
        (
            (
                "schedules",
                "backfill",
                "nightly",
                "--from",
                "2026-12-02",
                "--to",
                "2026-12-01",
                "--app",
                "wfmod:app",
            ),
            "the end is before the start",
        ),
    ]
    for args, says in cases:
        done = env.cli(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
