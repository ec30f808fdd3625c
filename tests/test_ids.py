"""Ids follow one rule (durable._ids): 1 to 255 printable characters. A run id, workflow name,
version, step, action or signal name that breaks it is refused with InvalidIdError (a
ValueError saying what is wrong, the rule, and what to do) before anything is written, on
every backend: a NUL in a run id on PostgreSQL was reported as DatabaseUnavailableError."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from durable._ids import MAX_ID_LENGTH, check_id
from sdk import App, Context, InvalidIdError

GOOD = ["order-1", "Production Deployment Pipeline", "commande-é", "注文", "a/b:c#1", "x" * 255]
BAD = {
    "": "is empty",
    "x" * 256: "is 256 characters long",
    "a\x00b": "contains NUL (U+0000) at position 2",
    "\x1b[31mred": "contains ESC (U+001B) at position 1",
    "two\nlines": "contains a newline (U+000A) at position 4",
    "tab\there": "contains a tab",
    "del\x7f": "U+007F",
    "c1\x9b": "U+009B",
    "rtl\u202eevil": "U+202E",
    "nbsp\u00a0": "U+00A0",
}


@pytest.mark.parametrize("value", GOOD)
def test_ids_that_follow_the_rule_pass(value: str) -> None:
    assert check_id("run id", value) == value


@pytest.mark.parametrize("value", list(BAD))
def test_ids_that_break_the_rule_say_what_and_how_to_fix(value: str) -> None:
    with pytest.raises(InvalidIdError) as caught:
        check_id("run id", value)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("invalid run id ")
    assert BAD[value] in message
    assert f"1 to {MAX_ID_LENGTH} printable characters" in message
    assert "choose another run id" in message
    # The message itself is safe to print: the value is shown escaped, and bounded.
    assert message.isprintable() and len(message) < 600


def test_a_non_string_id_is_refused() -> None:
    with pytest.raises(InvalidIdError, match="is of type int, not a string"):
        check_id("run id", 5)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url: str = request.getfixturevalue("pg_fresh_url")
    return url


def make_app(url: str) -> App:
    app = App(url)

    @app.workflow(name="greet")
    async def greet(ctx: Context, name: str) -> str:
        return f"hello {name}"

    @app.workflow(name="waiter")
    async def waiter(ctx: Context) -> object:
        return await ctx.wait_for_signal("go")

    return app


@pytest.mark.asyncio
@pytest.mark.parametrize("run_id", ["a\x00b", "\x1b[2Jwiped", "x" * 256, ""])
async def test_start_refuses_a_bad_run_id_before_writing(db_url: str, run_id: str) -> None:
    app = make_app(db_url)
    async with app:
        with pytest.raises(InvalidIdError, match="invalid run id"):
            await app.start("greet", "x", run_id=run_id)
        assert await app.list_runs() == []


@pytest.mark.asyncio
async def test_lookups_with_a_nul_are_refused_not_a_database_error(db_url: str) -> None:
    app = make_app(db_url)
    async with app:
        handle = await app.start("waiter", run_id="ok-1")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: app.get_run("a\x00b"),
            lambda: app.signal("a\x00b", "go", 1),
            lambda: app.cancel("a\x00b"),
            lambda: app.engine.client.events("a\x00b"),
            lambda: app.engine.client.fork("a\x00b", 0),
            lambda: app.engine.client.retry("a\x00b"),
        ]
        for call in calls:
            with pytest.raises(InvalidIdError, match="contains NUL"):
                await call()
        with pytest.raises(InvalidIdError, match="invalid signal name"):
            await app.signal(handle.run_id, "go\x1b[0m", 1)
        await app.signal(handle.run_id, "go", 7)
        assert await handle.result(timeout=60) == 7


@pytest.mark.asyncio
async def test_fork_refuses_a_bad_new_run_id(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        handle = await app.start("greet", "x")
        await handle.result(timeout=60)
        with pytest.raises(InvalidIdError, match="invalid run id"):
            await app.engine.client.fork(handle.run_id, 0, new_run_id="f\x00")


def test_workflow_step_and_action_names_follow_the_rule(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")

    async def wf(ctx: Context) -> None:
        return None

    with pytest.raises(InvalidIdError, match="invalid workflow name"):
        app.workflow(name="bad\x1b[31m")(wf)
    with pytest.raises(InvalidIdError, match="invalid workflow version"):
        app.workflow(name="ok", version="1\n")(wf)
    with pytest.raises(InvalidIdError, match="invalid step name"):
        app.step(name="s\x00")(lambda: None)
    with pytest.raises(InvalidIdError, match="invalid action name"):
        app.register_action("act\x07", lambda params, context: None)


def test_a_dag_named_with_an_escape_code_is_refused(tmp_path: Path) -> None:
    from durable.dag import parse_definition

    definition = parse_definition(
        'name: "evil\\e[2J"\ntasks:\n  a:\n    code: "return 1"\n', str(tmp_path / "wf.yaml")
    )
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(InvalidIdError, match="invalid workflow name"):
        app.register_dag(definition)


def test_the_cli_refuses_a_bad_run_id_in_one_line(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: hello\ntasks:\n  a:\n    code: 'return 1'\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "durable",
            "run",
            str(wf),
            "--db",
            f"sqlite:///{tmp_path / 'runs.db'}",
            "--run-id",
            "r\x1b[31m",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: invalid run id 'r\\x1b[31m'"), proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr


@pytest.mark.asyncio
async def test_fork_run_itself_refuses_a_bad_new_run_id(tmp_path: Path) -> None:
    # What `durable fork --run-id` calls, without going through the client.
    from durable._repair_ops import fork_run

    app = make_app(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        handle = await app.start("greet", "x")
        await handle.result(timeout=60)
        with pytest.raises(InvalidIdError, match="invalid run id"):
            await fork_run(app.engine.store, app.registry, handle.run_id, "0", run_id="f\x1b[2J")
        assert len(await app.list_runs()) == 1
