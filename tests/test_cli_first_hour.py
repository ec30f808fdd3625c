"""What a new user meets in the first hour with the command line, as real subprocesses: a run
resumed under changed code shown by `runs show`, Ctrl-C while a worker starts, a busy port on
`durable serve`, an empty --db. Each answer is one clear line (or none), never a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import Project, start_worker, stop, user_error, wait_for


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# -- runs show: a run that continued under changed code --------------------------------------


async def test_runs_show_a_run_resumed_under_changed_code(project: Project) -> None:
    flag = project.root / "go"
    project.start_runs(f"'gated', {str(flag)!r}, run_id='g1'")
    proc, _, err = start_worker(project)
    try:
        await wait_for(project, "g1", "running", min_events=2)  # the step is in flight
    finally:
        stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, err.read_text()
    # The workflow's code changes (same name and version) while the run is in flight.
    source = (project.root / "cliapp.py").read_text()
    body = "    return await wait_for_file(path)"
    changed = source.replace(body, "    got = await wait_for_file(path)\n    return got")
    assert changed != source
    (project.root / "cliapp.py").write_text(changed)
    flag.touch()
    proc, _, err = start_worker(project)
    try:
        await wait_for(project, "g1", "succeeded")
    finally:
        stop(proc, signal.SIGTERM)
    types = [e["type"] for e in project.json("events", "g1")]
    assert "CodeChanged" in types
    info = project.json("runs", "show", "g1")
    assert len(info["code_changes"]) == 1

    shown = project.cli("runs", "show", "g1")
    assert shown.returncode == 0, shown.stderr
    assert "Traceback" not in shown.stdout + shown.stderr
    text = " ".join(shown.stdout.split())  # rich may wrap the line
    started = info["fingerprint"][:12]
    now, at = info["code_changes"][0].split(" at event ")
    assert f"changed since the run started (fingerprint {started} → {now} at event {at})" in text


# -- --db '' --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--db", ""],
        ["--db", "", "runs", "list"],
        ["events", "x", "--db", ""],
        ["worker", "cliapp:app", "--db", ""],
        ["serve", "--db", ""],
        ["--db=", "runs", "show", "x"],
    ],
)
def test_an_empty_db_option_is_refused(project: Project, args: list[str]) -> None:
    line = user_error(project.cli(*args))
    assert "--db is empty" in line and "DURABLE_DATABASE_URL" in line
    assert not (project.root / "durable.db").exists()


def test_an_empty_database_environment_variable_means_unset(project: Project) -> None:
    # The convention for environment variables: empty is the same as not set, so the
    # default ./durable.db is used (and `runs list` says it is not there).
    line = user_error(project.cli("runs", "list", DURABLE_DATABASE_URL=""))
    assert "no database at durable.db" in line


# -- durable serve on a busy port -----------------------------------------------------------


def test_serve_on_a_busy_port_says_so_in_one_line(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = project.cli("serve", "--port", str(port), "--no-worker")
    line = user_error(proc)  # exit 2, one line, no traceback, nothing on stdout
    assert line == f"error: port {port} on 127.0.0.1 is in use; choose another with --port"
    assert "http://" not in proc.stderr  # no URL for a server that never listened


# -- Ctrl-C while `durable worker` starts ---------------------------------------------------


# What the `durable` console script runs, with a line saying main() is about to take over.
# Ctrl-C before that (Python's own start-up, or the console script importing `main` from the
# two small package modules, which import nothing else) is Python's business.
CONSOLE_SCRIPT = (
    "import sys; sys.argv = ['durable', *sys.argv[1:]]; from durable.cli import main; "
    "sys.stderr.write('started\\n'); sys.stderr.flush(); sys.exit(main())"
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.2])
def test_ctrl_c_while_the_worker_starts_exits_quietly(project: Project, delay: float) -> None:
    """SIGINT at any moment of start-up (importing, loading the app, opening the database,
    running): never a traceback. Before the worker runs it exits 130 with one line at most;
    once it runs, Ctrl-C is its ordinary graceful stop (status 0)."""
    command = ["-c", CONSOLE_SCRIPT, "worker", "cliapp:app", "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, *command],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stderr.readline() == "started\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err, err
    assert "Aborted" not in err
    if "durable worker" in out and "stopped" in out:  # it was running: a graceful stop
        assert proc.returncode == 0, err
    else:
        assert proc.returncode == 130, (proc.returncode, out, err)
        assert out == "" or out.startswith("durable worker "), out
        assert err in ("", "interrupted\n"), err
