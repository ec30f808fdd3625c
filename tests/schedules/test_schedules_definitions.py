"""`schedule:` in YAML and JSON definitions: parsed and checked where it is written (a bad
cron or timezone is a problem with its file and line), left out of the fingerprint, and fired
by an engine that registers the definition, the run's input holding its tick."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable import decode_value
from durable.dag import DagDefinitionError, parse_definition
from durable.events import RunStarted
from sdk import App

YAML = """
name: cleanup
schedule:
  cron: "* * * * * *"
  timezone: Europe/Berlin
  overlap: allow
tasks:
  sweep:
    code: "return 1"
"""

ROOT = Path(__file__).resolve().parents[2]

JSON = {
    "id": "export",
    "schedule": {"cron": "0 3 * * *", "catchupLimit": 5, "catchup": "all"},
    "steps": [{"id": "a", "action": "transform", "params": {"code": "return 1"}}],
}


def test_yaml_and_json_schedules_parse_and_register() -> None:
    yaml_def = parse_definition(YAML, "cleanup.yaml")
    assert yaml_def.schedule == {
        "cron": "* * * * * *",
        "timezone": "Europe/Berlin",
        "overlap": "allow",
    }
    without = parse_definition(YAML.replace("  overlap: allow\n", ""), "cleanup.yaml")
    assert without.fingerprint() == yaml_def.fingerprint()  # not behaviour of a run
    json_def = parse_definition(json.dumps(JSON), "export.json")
    app = App("memory://")
    app.register_dag(json_def)
    spec = app.registry.schedules["export"]
    assert (spec.cron, spec.catchup, spec.catchup_limit, spec.workflow) == (
        "0 3 * * *",
        "all",
        5,
        "export",
    )
    as_text = {**JSON, "id": "x", "schedule": "*/5 * * * *"}
    text = parse_definition(json.dumps(as_text), "x.json")
    assert text.schedule == "*/5 * * * *"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ('  cron: "61 * * * *"\n', "cron expression '61 * * * *' is not valid"),
        ('  cron: "* * * * *"\n  timezone: Mars/Base\n', "unknown timezone 'Mars/Base'"),
        ('  cron: "* * * * *"\n  overlap: sometimes\n', "unknown overlap policy"),
        ("  timezone: UTC\n", "needs `cron`"),
        ('  cron: "* * * * *"\n  every: 5\n', "unknown key(s) ['every']"),
    ],
)
def test_a_bad_schedule_is_a_problem_where_it_is_written(bad: str, says: str) -> None:
    text = f"name: cleanup\nschedule:\n{bad}tasks:\n  sweep:\n    code: 'return 1'\n"
    with pytest.raises(DagDefinitionError) as caught:
        parse_definition(text, "cleanup.yaml")
    (problem,) = caught.value.problems
    assert says in problem.message and "'cleanup'" in problem.message
    assert problem.file == "cleanup.yaml" and problem.line in (2, 3)
    assert problem.path == "$.schedule"


async def test_a_yaml_schedule_fires_runs_with_their_tick(tmp_path: Path) -> None:
    (tmp_path / "cleanup.yaml").write_text(YAML)
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.1)
    app.register_dag(tmp_path / "cleanup.yaml")
    async with app:
        deadline = time.monotonic() + 15
        while (
            len(
                done := [
                    r for r in await app.list_runs(workflow="cleanup") if r.status == "succeeded"
                ]
            )
            < 2
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        (listed,) = await app.list_schedules()
        assert listed.timezone == "Europe/Berlin"
        for r in done:
            started = (await app.events(r.run_id))[0].event
            assert isinstance(started, RunStarted)
            tick = decode_value(started.input)
            assert r.run_id == f"cleanup@{tick['scheduled_at']}"
            assert tick["scheduled_at_local"].endswith(("+01:00", "+02:00"))


def test_durable_run_of_a_scheduled_definition_runs_it_once(tmp_path: Path) -> None:
    """`durable run FILE` executes one run: it neither declares nor fires the schedule."""
    (tmp_path / "cleanup.yaml").write_text(YAML)
    env = {**os.environ, "DURABLE_DATABASE_URL": f"sqlite:///{tmp_path / 'runs.db'}"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "durable", "run", "cleanup.yaml", "--run-id", "once"]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    time.sleep(1.5)  # a scheduler would have fired by now (every second)
    listed = subprocess.run(
        [sys.executable, "-m", "durable", "runs", "list", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ["once"]
    schedules = subprocess.run(
        [sys.executable, "-m", "durable", "schedules", "list", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(schedules.stdout) == []
