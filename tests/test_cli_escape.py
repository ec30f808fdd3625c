"""The CLI never prints a terminal control sequence it did not make: run ids, workflow names,
step names, errors, tracebacks and results written into the store (by an older version that
did not check ids, or in fields no id rule covers: an error message, a step's result) are
shown escaped (ESC as \\x1b), in tables, details and one-line errors alike."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import durable._client
import durable.runtime._registry
from durable.cli._app import CLIError
from durable.cli._escape import escape_controls
from sdk import App, Context, RetryPolicy

ESC = "\x1b"
EVIL_ID = f"{ESC}]0;pwned{ESC}\\{ESC}[2Jrun"
EVIL_WF = f"wf{ESC}[31m"
EVIL_STEP = f"step{ESC}[8m"


def test_escape_controls_keeps_text_and_shows_every_control_character() -> None:
    assert escape_controls("plain — é 注文") == "plain — é 注文"
    assert escape_controls("two\nlines\tand tab") == "two\nlines\tand tab"
    assert escape_controls(f"a{ESC}[31mb") == "a\\x1b[31mb"
    assert escape_controls("cr\rbell\x07del\x7fcsi\x9bnul\x00") == (
        "cr\\rbell\\x07del\\x7fcsi\\x9bnul\\x00"
    )
    assert escape_controls("rtl\u202eevil\u2066") == "rtl\\u202eevil\\u2066"


@pytest.fixture
def old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database holding what an older version let in: ids with escape codes, and an error
    message, traceback and result full of them."""
    # The older version: no id rule.
    monkeypatch.setattr(durable._client, "check_id", lambda kind, value: value)
    monkeypatch.setattr(durable.runtime._registry, "check_id", lambda kind, value: value)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    app = App(url)

    @app.step(name=EVIL_STEP)
    def shout() -> str:
        return f"{ESC}[41mresult{ESC}[0m"

    @app.step(retry=RetryPolicy(max_attempts=1))
    def explode() -> None:
        raise RuntimeError(f"boom {ESC}[2J{ESC}[H cleared\rover")

    @app.workflow(name=EVIL_WF)
    async def wf(ctx: Context) -> None:
        await shout()
        await explode()

    async def go() -> None:
        async with app:
            handle = await app.start(wf, run_id=EVIL_ID)
            with pytest.raises(Exception, match="boom"):
                await handle.result(timeout=60)

    import asyncio

    asyncio.run(go())
    return url


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list"),
        ("runs", "show", EVIL_ID),
        ("events", EVIL_ID),
        ("runs", "list", "--workflow", EVIL_WF),
    ],
    ids=["runs-list", "runs-show", "events", "runs-list-workflow"],
)
def test_nothing_raw_reaches_the_terminal(old_store: str, args: tuple[str, ...]) -> None:
    proc = cli(*args, "--db", old_store)
    assert proc.returncode == 0, proc.stderr
    assert ESC not in proc.stdout and ESC not in proc.stderr, proc.stdout
    assert "\r" not in proc.stdout
    assert "\\x1b" in proc.stdout  # shown, escaped


def test_runs_show_escapes_the_error_and_the_traceback(old_store: str) -> None:
    proc = cli("runs", "show", EVIL_ID, "--db", old_store)
    assert "boom \\x1b[2J\\x1b[H cleared" in proc.stdout
    assert "Traceback" in proc.stdout  # the traceback is printed, escaped
    assert ESC not in proc.stdout


def test_a_one_line_error_escapes_what_it_quotes() -> None:
    # Lower layers' messages quote stored text unescaped (a step's error inside StepFailed).
    out = io.StringIO()
    CLIError(f"step 'x' failed: boom {ESC}[2J\nsecond line").show(out)
    assert out.getvalue() == "error: step 'x' failed: boom \\x1b[2J second line\n"
