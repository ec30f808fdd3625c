"""The `durable` command line, run as a real subprocess against real SQLite files.

Runs are created by a small script using the SDK in its own process, exactly as a user would;
the CLI then reads them back, replays them against the app module (or a changed copy of it),
and executes pending ones as a worker that is stopped with a signal.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from storage import Append, EventRecord, open_store

APP = """\
import asyncio, os
from sdk import App

app = App(worker=os.environ.get("CLIAPP_WORKER") != "0")

@app.step
def double(x: int) -> int:
    return x * 2

@app.step
def triple(x: int) -> int:
    return x * 3

@app.step
def blob(x: int) -> bytes:
    return bytes([x, 0, 255])

@app.step
async def boom(x: int) -> int:
    raise ValueError(f"boom {x}")

@app.step
async def wait_for_file(path: str) -> str:
    while not os.path.exists(path):
        await asyncio.sleep(0.05)
    return "released"

@app.workflow
async def order(ctx, n: int) -> dict[str, int]:
    a = await double(n)
    b = await double(a)  # SECOND STEP
    raw = await blob(n)
    return {"total": b, "size": len(raw)}

@app.workflow
async def failing(ctx, n: int) -> int:
    return await boom(n)

@app.workflow
async def gated(ctx, path: str) -> str:
    return await wait_for_file(path)

@app.workflow
async def odd_keys(ctx) -> dict:
    return {b"k": [1, 2], (1, 2): None}
"""
# The same app where `order` exists only as version 2.
ORDER_V2_ONLY = APP.replace("workflow\nasync def order", "workflow(version='2')\nasync def order")

CREATE = """\
import asyncio
from cliapp import app

async def main():
    async with app:
        await app.run("order", 3, run_id="ok-run")
        handle = await app.start("failing", 4, run_id="bad-run")
        try:
            await handle.result()
        except Exception:
            pass

asyncio.run(main())
"""

SUMMARY_KEYS = "run_id workflow version status created_at finished_at duration waiting_for"
INFO_KEYS = (
    f"{SUMMARY_KEYS} input result error steps parent_run_id owner events"
    " waiting_on fingerprint code_changes forked_from fork_point retries usage queue queued"
    " generation history_start"
)
OK_EVENTS = ["RunStarted", *["StepStarted", "StepCompleted"] * 3, "RunCompleted"]


class Project:
    """A directory holding an app module and a database, and a way to run commands there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "runs.db"
        self.url = f"sqlite:///{self.db}"
        (root / "cliapp.py").write_text(APP)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
        env.update(DURABLE_DATABASE_URL=self.url, PYTHONPATH=str(self.root))
        env.update(extra)
        return env

    def _run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=self.root,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def python(self, script: str, **env: str) -> None:
        proc = self._run(["-c", script], env)
        assert proc.returncode == 0, proc.stderr

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self._run(["-m", "durable", *args], env)

    def start_runs(self, *calls: str) -> None:
        """Create pending runs (app.start calls) with an App that executes nothing."""
        body = "".join(f"        await app.start({call})\n" for call in calls)
        script = "import asyncio\nfrom cliapp import app\nasync def main():\n"
        self.python(f"{script}    async with app:\n{body}asyncio.run(main())", CLIAPP_WORKER="0")

    def run_ids(self, *args: str) -> list[str]:
        return [r["run_id"] for r in self.json("runs", "list", *args)]

    def json(self, *args: str) -> Any:
        proc = self.cli(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A succeeded run "ok-run" (order(3)) and a failed run "bad-run" (failing(4))."""
    project = Project(tmp_path_factory.mktemp("cli"))
    project.python(CREATE)
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def user_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the error contract (one stderr line, "error: ", exit 2, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- runs list / runs show / events ---------------------------------------------------------


def test_runs_list_table_newest_first(populated: Project) -> None:
    proc = populated.cli("runs", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    bad = next(i for i, line in enumerate(lines) if "bad-run" in line)
    ok = next(i for i, line in enumerate(lines) if "ok-run" in line)
    assert bad < ok
    assert "failing@1" in lines[bad] and "failed" in lines[bad]
    assert "order@1" in lines[ok] and "succeeded" in lines[ok]


def test_runs_list_json_and_filters(populated: Project) -> None:
    runs = populated.json("runs", "list")
    assert [r["run_id"] for r in runs] == ["bad-run", "ok-run"]
    assert set(runs[0]) == set(SUMMARY_KEYS.split())
    assert populated.run_ids("--status", "failed") == ["bad-run"]
    assert populated.run_ids("--workflow", "order") == ["ok-run"]
    assert populated.run_ids("--limit", "1") == ["bad-run"]
    assert populated.run_ids("--status", "running") == []


def test_db_option_on_group_and_command(populated: Project, tmp_path: Path) -> None:
    elsewhere = f"sqlite:///{tmp_path / 'absent.db'}"
    env = {"DURABLE_DATABASE_URL": elsewhere}
    assert "no database at" in user_error(populated.cli("runs", "list", **env))
    group = populated.cli("--db", populated.url, "runs", "list", "--json", **env)
    assert [r["run_id"] for r in json.loads(group.stdout)] == ["bad-run", "ok-run"]
    # The command's --db wins over the group's.
    both = populated.cli("--db", elsewhere, "runs", "list", "--db", populated.url, "--json")
    assert both.returncode == 0, both.stderr
    assert not (tmp_path / "absent.db").exists()  # reading never creates a database


def test_runs_show_succeeded(populated: Project) -> None:
    proc = populated.cli("runs", "show", "ok-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "order@1" in out and "succeeded" in out
    assert '{"total":12,"size":3}' in out
    steps = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert [s[:4] for s in steps] == [[str(n), "double", "succeeded", "1"] for n in (0, 1)]
    assert steps[0][-1] == "6" and steps[1][-1] == "12"


def test_runs_show_failed_has_error_and_traceback(populated: Project) -> None:
    proc = populated.cli("runs", "show", "bad-run")
    assert proc.returncode == 0, proc.stderr
    error_line = next(line for line in proc.stdout.splitlines() if line.startswith("error"))
    assert "durable.StepFailed" in error_line and "ValueError: boom 4" in error_line
    assert "Traceback (most recent call last)" in proc.stdout  # the run's, under the error
    assert "cliapp.py" in proc.stdout
    assert any(line.split()[:3] == ["0", "boom", "failed"] for line in proc.stdout.splitlines())


def test_runs_show_json_shape(populated: Project) -> None:
    info = populated.json("runs", "show", "ok-run")
    assert set(info) == set(INFO_KEYS.split())
    assert (info["input"], info["result"], info["error"]) == (3, {"total": 12, "size": 3}, None)
    assert info["events"] == len(OK_EVENTS)
    assert (info["queue"], info["queued"]) == (None, None)  # a plain run: in no queue
    assert (info["generation"], info["history_start"]) == (0, 1)  # never continued as new
    steps = [(s["position"], s["name"], s["result"]) for s in info["steps"]]
    assert steps == [(0, "double", 6), (1, "double", 12), (2, "blob", "AwD/")]
    failed = populated.json("runs", "show", "bad-run")
    assert failed["status"] == "failed" and failed["result"] is None
    assert set(failed["error"]) == {"type", "message", "traceback"}
    assert failed["steps"][0]["error"]["type"] == "ValueError"


def test_events_json_decodes_nested_values(populated: Project) -> None:
    events = populated.json("events", "ok-run")
    assert [e["type"] for e in events] == OK_EVENTS
    assert [e["seq"] for e in events] == list(range(1, len(OK_EVENTS) + 1))
    assert set(events[0]) == {"seq", "at", "type", "fields"}
    assert events[0]["fields"]["workflow"] == "order"
    assert events[0]["fields"]["input"] == 3
    assert events[1]["fields"] == {"pos": 0, "name": "double", "attempt": 1, "input": [[3], {}]}
    assert events[2]["fields"] == {"pos": 0, "result": 6}
    assert events[6]["fields"]["result"] == "AwD/"  # bytes([3, 0, 255]), base64 as in JSON
    assert events[-1]["fields"]["result"] == {"total": 12, "size": 3}
    failed = populated.json("events", "bad-run")
    assert failed[2]["type"] == "StepFailed"
    assert failed[2]["fields"]["error"]["message"] == "boom 4"


def test_map_keys_json_cannot_express(project: Project) -> None:
    project.python(
        "import asyncio\nfrom cliapp import app\nasync def main():\n    async with app:\n"
        "        await app.run('odd_keys', run_id='odd')\nasyncio.run(main())"
    )
    expected = {'"aw=="': [1, 2], "[1,2]": None}  # b"k" as base64, the array as JSON
    assert project.json("runs", "show", "odd")["result"] == expected
    assert project.json("events", "odd")[-1]["fields"]["result"] == expected
    for args in (["runs", "show", "odd"], ["events", "odd"]):
        proc = project.cli(*args)
        assert proc.returncode == 0, proc.stderr
        assert '{"\\"aw==\\"":[1,2],"[1,2]":null}' in proc.stdout


def test_events_table_never_prints_bytes_reprs(populated: Project) -> None:
    proc = populated.cli("events", "ok-run")
    assert proc.returncode == 0, proc.stderr
    assert "b'" not in proc.stdout and "Raw" not in proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] == ["3"]]
    assert rows and "StepCompleted" in rows[0] and "result=6" in rows[0]


# -- replay --------------------------------------------------------------------------------


def test_replay_deterministic(populated: Project) -> None:
    proc = populated.cli("replay", "ok-run", "--app", "cliapp:app")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deterministic" in proc.stdout and "NOT" not in proc.stdout
    report = populated.json("replay", "bad-run", "--app", "cliapp:app")
    assert report["deterministic"] is True and report["divergence"] is None
    assert report["status"] == "failed" and report["events"] == 4


def test_replay_divergence_names_position_and_steps(populated: Project) -> None:
    changed = APP.replace("b = await double(a)", "b = await triple(a)")
    (populated.root / "cliapp_v2.py").write_text(changed)
    line = changed.splitlines().index("    b = await triple(a)  # SECOND STEP") + 1
    proc = populated.cli("replay", "ok-run", "--app", "cliapp_v2:app")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fields = {w[0]: w[1:] for w in (row.split() for row in proc.stdout.splitlines()) if w}
    assert "NOT deterministic" in proc.stdout
    assert fields["position"] == ["1"]
    assert fields["recorded"] == ["step", "'double'"]
    assert fields["requested"] == ["step", "'triple'"]
    assert fields["source"][0].endswith(f"cliapp_v2.py:{line}")
    as_json = populated.cli("replay", "ok-run", "--app", "cliapp_v2:app", "--json")
    assert as_json.returncode == 1
    divergence = json.loads(as_json.stdout)["divergence"]
    found = [divergence[key] for key in ("position", "recorded", "requested")]
    assert found == [1, "step 'double'", "step 'triple'"]


def test_replay_until_rebuilds_intermediate_state(populated: Project) -> None:
    state = populated.json("replay", "ok-run", "--until", "4")
    assert (state["until_seq"], state["events"], state["status"]) == (4, len(OK_EVENTS), "running")
    assert [(s["name"], s["status"], s["result"]) for s in state["steps"]] == [
        ("double", "succeeded", 6),
        ("double", "running", None),
    ]
    proc = populated.cli("replay", "ok-run", "--until", "3", "--app", "cliapp:app")
    assert proc.returncode == 0, proc.stderr
    assert f"after event 3 of {len(OK_EVENTS)}: running" in proc.stdout
    final = populated.json("replay", "ok-run", "--until", str(len(OK_EVENTS)))
    assert final["status"] == "succeeded" and final["result"] == {"total": 12, "size": 3}


# -- user errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["runs", "show", "nope"], "no run with id 'nope'"),
        (["events", "nope"], "no run with id 'nope'"),
        (["replay", "nope", "--app", "cliapp:app"], "no run with id 'nope'"),
        (["replay", "nope", "--until", "1"], "no run with id 'nope'"),
        (["replay", "ok-run", "--until", "99"], "has 8 events"),
        (["replay", "ok-run"], "needs --app"),
        (["--db", "bogus://x", "runs", "list"], "unsupported database URL scheme 'bogus'"),
        (["runs", "list", "--db", "sqlite:///"], "bad SQLite URL"),
        (["replay", "ok-run", "--app", "cliapp"], "expected 'module:attribute'"),
        (["replay", "ok-run", "--app", "cliapp:"], "expected 'module:attribute'"),
        (["replay", "ok-run", "--app", "nosuchmod:app"], "no module named 'nosuchmod'"),
        (["worker", "nosuchmod.sub:app"], "no module named 'nosuchmod'"),
        (["replay", "ok-run", "--app", "cliapp:nope"], "has no attribute 'nope'"),
        (["worker", "cliapp:double"], "not a durable application"),
        (["worker", "os:path"], "not a durable application"),
    ],
)
def test_user_errors(populated: Project, args: list[str], expected: str) -> None:
    assert expected in user_error(populated.cli(*args))


def test_import_failure_in_app_module(project: Project) -> None:
    (project.root / "brokenapp.py").write_text("import os\nraise RuntimeError('no config')\n")
    line = user_error(project.cli("worker", "brokenapp:app"))
    assert "importing module 'brokenapp' failed: RuntimeError: no config" in line
    assert "brokenapp.py:2" in line


def test_unreadable_databases(project: Project) -> None:
    missing_dir = f"sqlite:///{project.root / 'no' / 'such' / 'dir.db'}"
    not_sqlite = project.root / "notes.db"
    not_sqlite.write_text("these are not the rows you are looking for\n" * 50)
    assert "does not exist" in user_error(project.cli("runs", "list", "--db", missing_dir))
    assert "does not exist" in user_error(project.cli("worker", "cliapp:app", "--db", missing_dir))
    for args in (["runs", "list"], ["events", "x"], ["worker", "cliapp:app"]):
        line = user_error(project.cli(*args, "--db", str(not_sqlite)))
        assert "not a SQLite database" in line
    assert "no database at" in user_error(project.cli("runs", "list"))  # never created


def test_app_without_the_runs_workflow_version(populated: Project) -> None:
    (populated.root / "cliapp_v3.py").write_text(ORDER_V2_ONLY)
    line = user_error(populated.cli("replay", "ok-run", "--app", "cliapp_v3:app"))
    assert "unknown workflow 'order' version '1'" in line and "order@2" in line


async def test_corrupted_event(populated: Project, tmp_path: Path) -> None:
    shutil.copy(populated.db, tmp_path / "copy.db")
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    store = open_store(url)
    await store.open()
    try:
        garbage = EventRecord("ok-run", 9, "RunCompleted", b"\xc1\xc1", time.time())
        await store.append(Append("ok-run", (garbage,), expected_last_seq=8))
    finally:
        await store.close()
    for args in (
        ["runs", "show", "ok-run"],
        ["events", "ok-run", "--json"],
        ["replay", "ok-run", "--app", "cliapp:app"],
    ):
        line = user_error(populated.cli(*args, "--db", url))
        assert "run 'ok-run': event #9 is corrupted" in line
    # The intact part of the history stays inspectable.
    state = populated.cli("replay", "ok-run", "--until", "8", "--db", url, "--json")
    assert json.loads(state.stdout)["status"] == "succeeded"


def test_cli_does_not_import_the_sdk() -> None:
    code = "import sys, durable.cli; assert 'sdk' not in sys.modules, 'sdk imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- worker --------------------------------------------------------------------------------


def start_worker(project: Project, *args: str) -> tuple[subprocess.Popen[str], Path, Path]:
    out, err = project.root / "worker.out", project.root / "worker.err"
    command = ["worker", "cliapp:app", "--poll-interval", "0.1", *args]
    # Files, not pipes: nobody reads while the worker runs, and a full pipe would block it.
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", *command],
            cwd=project.root,
            env=project.env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    return proc, out, err


async def wait_for(project: Project, run_id: str, status: str, min_events: int = 0) -> None:
    store = open_store(project.url)
    await store.open()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            record = await store.get_run(run_id)
            if record is not None and record.status == status and record.last_seq >= min_events:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"run {run_id} never reached {status}: {record}")
    finally:
        await store.close()


def stop(proc: subprocess.Popen[str], sig: signal.Signals) -> float:
    started = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=15)
    return time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_worker_runs_pending_runs_and_stops_on_signal(
    project: Project, sig: signal.Signals
) -> None:
    project.start_runs(*[f"'order', {n}, run_id='p{n}'" for n in range(3)])
    assert {r["status"] for r in project.json("runs", "list")} == {"pending"}
    proc, out, err = start_worker(project)
    try:
        for n in range(3):
            await wait_for(project, f"p{n}", "succeeded")
    finally:
        elapsed = stop(proc, sig)
    assert proc.returncode == 0, err.read_text()
    assert elapsed < 5
    first = out.read_text().splitlines()[0]
    assert first.startswith("durable worker ") and "order@1" in first and str(project.db) in first
    log = err.read_text()
    assert all(f"starting run p{n} (order@1)" in log for n in range(3)), log
    totals = [project.json("runs", "show", f"p{n}")["result"]["total"] for n in range(3)]
    assert totals == [0, 4, 8]


async def test_worker_stop_gives_the_lease_back(project: Project) -> None:
    flag = project.root / "go"
    project.start_runs(f"'gated', {str(flag)!r}, run_id='g1'")
    proc, _, err = start_worker(project, "--lease-ttl", "60")
    try:
        await wait_for(project, "g1", "running", min_events=2)  # the step is in flight
    finally:
        elapsed = stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err.read_text()
    assert elapsed < 5
    info = project.json("runs", "show", "g1")
    assert info["status"] == "running" and info["owner"] is None  # lease released
    # A second worker continues at once instead of waiting out the 60 s lease.
    flag.touch()
    proc, _, err = start_worker(project, "--lease-ttl", "60")
    try:
        await wait_for(project, "g1", "succeeded")
    finally:
        stop(proc, signal.SIGTERM)
    assert project.json("runs", "show", "g1")["result"] == "released"


async def test_worker_says_which_runs_it_cannot_run(project: Project) -> None:
    project.start_runs("'order', 1, run_id='old'")
    (project.root / "cliapp.py").write_text(ORDER_V2_ONLY)  # this worker only has order@2
    proc, out, err = start_worker(project)
    try:
        for _ in range(200):
            if "left for a worker" in err.read_text():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # several claim rounds: the run must still not be taken
    finally:
        stop(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert "1 unfinished run(s) of order@1 are left for a worker that has that version" in (
        err.read_text()
    )
    assert "order@2" in out.read_text()
    assert project.json("runs", "show", "old")["status"] == "pending"
