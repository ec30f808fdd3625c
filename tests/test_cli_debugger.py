"""`durable replay --step`: the history walked event by event, driven through piped stdin (as
a script would) and through a pseudo-terminal (as a person would)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import CREATE
from test_cli_history import CHANGED, Project

REPO = Path(__file__).resolve().parent.parent
PROMPT = "[Enter/n] next  [c] continue  [q] quit > "
OK_EVENTS = ["RunStarted", *["StepStarted", "StepCompleted"] * 3, "RunCompleted"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("debugger"))
    (project.root / "cliapp_v2.py").write_text(CHANGED)
    project.python(CREATE)
    return project


def stepping(project: Project, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", "replay", *args, "--step"],
        input=stdin,
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def event_lines(out: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^#\d+ (\w+)", out, re.MULTILINE)]


def in_order(text: str, *parts: str) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, f"{part!r} missing after offset {at} in:\n{text}"
        at = found + len(part)


def test_piped_commands_walk_every_event_with_its_state_change(project: Project) -> None:
    proc = stepping(project, "n\nx\n\nc\n", "ok-run", "--app", "cliapp:app")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert event_lines(out) == OK_EVENTS
    # n, x (unknown: asked again), Enter, c: four prompts, then no more pauses.
    assert out.count(PROMPT) == 4
    assert "unknown command 'x'" in out
    in_order(
        out,
        "#1 RunStarted",
        "run order@1 created (pending)",
        PROMPT,
        "#2 StepStarted",
        "run pending -> running",
        "step 0 'double' pending -> running (attempt 1)",
        PROMPT,
        PROMPT,  # after the unknown command
        "#3 StepCompleted",
        "step 0 'double' running -> succeeded",
        PROMPT,
        "#4 StepStarted",
        "step 1 'double' pending -> running (attempt 1)",
        "#7 StepCompleted",
        "step 2 'blob' running -> succeeded",
        "#8 RunCompleted",
        "run running -> succeeded",
        "deterministic",
    )


def test_end_of_input_continues_and_q_quits(project: Project) -> None:
    to_end = stepping(project, "", "ok-run", "--app", "cliapp:app")
    assert to_end.returncode == 0, to_end.stderr
    assert event_lines(to_end.stdout) == OK_EVENTS and to_end.stdout.count(PROMPT) == 1
    quit_early = stepping(project, "n\nq\n", "ok-run", "--app", "cliapp:app")
    assert quit_early.returncode == 0, quit_early.stderr
    assert event_lines(quit_early.stdout) == OK_EVENTS[:2]
    assert quit_early.stdout.rstrip().endswith("quit after event #2")
    assert "deterministic" not in quit_early.stdout


def test_the_walk_stops_where_the_code_diverges(project: Project) -> None:
    proc = stepping(project, "c\n", "ok-run", "--app", "cliapp_v2:app")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert event_lines(proc.stdout) == OK_EVENTS[:4]
    in_order(
        proc.stdout,
        "#4 StepStarted",
        "step 1 'double' pending -> running",
        "^ the code diverges here (event #4)",
        "NOT deterministic",
        "side by side at position 1 (event #4)",
        "b = await triple(a)  # SECOND STEP",
    )


def test_retries_and_markers_from_golden_histories(project: Project) -> None:
    golden = REPO / "tests" / "golden"
    app = "golden.workflows:app"
    retries = stepping(project, "", "--history", str(golden / "retries.json"), "--app", app)
    assert retries.returncode == 0, retries.stderr
    in_order(
        retries.stdout,
        "step 0 'flaky' running -> retrying (ConnectionError: attempt 1 lost the connection)",
        "step 0 'flaky' retrying -> running (attempt 2)",
        "step 0 'flaky' running -> retrying (ConnectionError: attempt 2 lost the connection)",
        "step 0 'flaky' retrying -> running (attempt 3)",
        "step 0 'flaky' running -> succeeded",
    )
    markers = stepping(project, "", "--history", str(golden / "markers.json"), "--app", app)
    assert markers.returncode == 0, markers.stderr
    in_order(markers.stdout, "marker 0 ctx.now() = ", "marker 1 ctx.random() = 0.")
    assert re.search(r'marker 2 ctx.uuid4\(\) = "[0-9a-f]{32}"', markers.stdout)


def test_step_cannot_be_combined_with_json_or_until(project: Project) -> None:
    for extra in (["--json"], ["--until", "2"]):
        proc = stepping(project, "", "ok-run", "--app", "cliapp:app", *extra)
        assert proc.returncode == 2 and "--step is interactive" in proc.stderr


class Terminal:
    """A child process on a pseudo-terminal: what a person at a terminal would see and type."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.fd, child = pty.openpty()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=child, stdout=child, stderr=child, close_fds=True
        )
        os.close(child)
        self.seen = ""
        self.at = 0  # expect() looks past what earlier expectations matched

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.at :]:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; saw:\n{self.seen}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"{text!r} never came; saw:\n{self.seen}"
                self.seen += ANSI.sub("", chunk.decode(errors="replace")).replace("\r", "")
        self.at = self.seen.index(text, self.at) + len(text)

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def close(self) -> int:
        code = self.proc.wait(timeout=30)
        os.close(self.fd)
        return code


def test_step_through_a_terminal(project: Project) -> None:
    env = project.env(COLUMNS="200", TERM="xterm")
    argv = [sys.executable, "-m", "durable", "replay", "ok-run", "--app", "cliapp:app", "--step"]
    term = Terminal(argv, project.root, env)
    try:
        term.expect("#1 RunStarted")
        term.expect(PROMPT)
        time.sleep(0.2)
        assert "#2" not in term.seen  # it waits for us
        term.send("\r")  # Enter
        term.expect("step 0 'double' pending -> running (attempt 1)")
        term.expect(PROMPT)
        assert "#3" not in term.seen
        term.send("n\r")
        term.expect("step 0 'double' running -> succeeded")
        term.expect(PROMPT)
        term.send("c\r")
        term.expect("deterministic")
    finally:
        code = term.close()
    assert code == 0, term.seen
    assert event_lines(term.seen) == OK_EVENTS
    in_order(term.seen, "#2 StepStarted", "#3 StepCompleted", "#8 RunCompleted", "deterministic")
