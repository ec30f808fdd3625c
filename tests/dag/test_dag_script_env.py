"""The environment a script step runs in: the worker's own, minus the engine's variables (its
database URL and password, its API tokens), with the task's `environment` on top; or, with
`inherit_environment: false` (per task or per workflow), only PATH/LANG/HOME/TMPDIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from durable.dag import DagResult, parse_definition
from durable.dag._script import script_env
from sdk import App


def durable(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env={**base, **env},
    )


async def run_text(tmp_path: Path, text: str, file: str = "wf.yaml") -> DagResult:
    app = App(f"sqlite:///{tmp_path / 'r.db'}")
    definition = parse_definition(textwrap.dedent(text), str(tmp_path / file))
    async with app:
        name = app.register_dag(definition)
        return await app.run_dag(name, timeout=120)


def seen(result: DagResult, step: str) -> dict[str, str]:
    assert result.steps[step].status == "succeeded", result.steps[step].error
    found: dict[str, str] = json.loads(result.steps[step].result["stdout"])
    return found


DUMP = "python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'"


async def test_the_issue_reproduction_out_from_the_callers_environment(tmp_path: Path) -> None:
    """`OUT=$PWD/out durable run wf.yaml` with a script writing to $OUT."""
    (tmp_path / "wf.yaml").write_text('name: out\ntasks:\n  write:\n    script: echo hi > "$OUT"\n')
    done = durable(
        "run", "wf.yaml", "--db", f"sqlite:///{tmp_path / 'r.db'}",
        cwd=tmp_path, env={"OUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out").read_text() == "hi\n"


async def test_the_engines_secrets_never_reach_a_script(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(f"name: secrets\ntasks:\n  dump:\n    script: {DUMP!r}\n")
    pg = "postgresql://app:hunter2@127.0.0.1:9/nowhere"
    done = durable(
        "run", "wf.yaml", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--json",
        cwd=tmp_path,
        env={
            "DURABLE_DATABASE_URL": pg,
            "DURABLE_API_TOKEN": "admin-token",
            "DURABLE_API_READ_TOKEN": "read-token",
            "PGPASSWORD": "pgpass",
            "MY_COPY_OF_THE_URL": pg,  # carries the database password under another name
            "KEEP_ME": "kept",
        },
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    env = json.loads(json.loads(done.stdout)["steps"]["dump"]["result"]["stdout"])
    assert env["KEEP_ME"] == "kept"
    for name in ("DURABLE_DATABASE_URL", "DURABLE_API_TOKEN", "DURABLE_API_READ_TOKEN"):
        assert name not in env
    assert "PGPASSWORD" not in env and "MY_COPY_OF_THE_URL" not in env
    for secret in ("hunter2", "admin-token", "read-token", "pgpass"):
        assert secret not in json.dumps(env)


async def test_the_tasks_environment_goes_on_top(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_WORKER", "worker")
    monkeypatch.setenv("OVERRIDDEN", "worker")
    result = await run_text(
        tmp_path,
        f"""
        name: on_top
        tasks:
          dump:
            script: {DUMP!r}
            environment: {{OVERRIDDEN: task, ONLY_TASK: "1"}}
        """,
    )
    env = seen(result, "dump")
    assert env["FROM_WORKER"] == "worker"
    assert env["OVERRIDDEN"] == "task" and env["ONLY_TASK"] == "1"


async def test_inherit_environment_false_per_task_and_per_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_WORKER", "worker")
    minimal = {"PATH", "LANG", "HOME", "TMPDIR"}
    result = await run_text(
        tmp_path,
        f"""
        name: isolated
        tasks:
          isolated:
            script: {DUMP!r}
            inherit_environment: false
            environment: {{MINE: "1"}}
          inheriting:
            script: {DUMP!r}
        """,
    )
    isolated = seen(result, "isolated")
    assert "FROM_WORKER" not in isolated and isolated["MINE"] == "1"
    # sh and python3 add PWD, SHLVL, LC_CTYPE; nothing of the worker's beyond the minimal set.
    assert set(isolated) - {"MINE", "LC_CTYPE", "PWD", "SHLVL", "_"} <= minimal
    assert seen(result, "inheriting")["FROM_WORKER"] == "worker"

    result = await run_text(
        tmp_path,
        f"""
        name: isolated_workflow
        inherit_environment: false
        tasks:
          isolated: {{script: {DUMP!r}}}
          opted_in: {{script: {DUMP!r}, inherit_environment: true}}
        """,
    )
    assert "FROM_WORKER" not in seen(result, "isolated")
    assert seen(result, "opted_in")["FROM_WORKER"] == "worker"


async def test_inherit_environment_in_the_json_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FROM_WORKER", "worker")
    text = json.dumps(
        {
            "id": "json_isolated",
            "inheritEnvironment": False,
            "steps": [
                {"id": "isolated", "script": DUMP},
                {"id": "opted_in", "script": DUMP, "inheritEnvironment": True},
            ],
        }
    )
    result = await run_text(tmp_path, text, file="wf.json")
    assert "FROM_WORKER" not in seen(result, "isolated")
    assert seen(result, "opted_in")["FROM_WORKER"] == "worker"


def test_inherit_environment_changes_the_fingerprint_only_when_written() -> None:
    plain = parse_definition("name: fp\ntasks:\n  a: {script: 'true'}\n", "a.yaml")
    explicit = parse_definition(
        "name: fp\ntasks:\n  a: {script: 'true', inherit_environment: false}\n", "a.yaml"
    )
    assert plain.fingerprint() != explicit.fingerprint()
    # Definitions written before the option keep their fingerprint (and so their version).
    assert (
        plain.fingerprint()
        == parse_definition("name: fp\ntasks:\n  a: {script: 'true'}\n", "b.yaml").fingerprint()
    )


def test_script_env_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLE_DATABASE_URL", "postgresql://u:pw1234@h/db")
    monkeypatch.setenv("DURABLE_WHATEVER", "x")
    monkeypatch.setenv("PGPASSWORD", "y")
    monkeypatch.setenv("PGPASSFILE", "/secret/.pgpass")
    monkeypatch.setenv("DB", "postgresql://u:pw1234@h/db")
    monkeypatch.setenv("USER_THING", "z")
    env = script_env({"A": "1"})
    assert env["USER_THING"] == "z" and env["A"] == "1"
    for name in ("DURABLE_DATABASE_URL", "DURABLE_WHATEVER", "PGPASSWORD", "PGPASSFILE", "DB"):
        assert name not in env
    # The task's environment is the author's choice, even for an engine-looking name.
    assert script_env({"DURABLE_FLAG": "on"})["DURABLE_FLAG"] == "on"
    monkeypatch.setenv("DURABLE_API_TOKEN", "first-token, second-token")
    monkeypatch.setenv("DURABLE_SMTP_PASSWORD", "mail-secret")
    monkeypatch.setenv("COPIES", "second-token")
    monkeypatch.setenv("MAIL", "mail-secret")
    assert "COPIES" not in script_env(None) and "MAIL" not in script_env(None)
    monkeypatch.setenv("OTHER_URL", "postgresql://u:given-by-db@h/db")
    assert "OTHER_URL" in script_env(None)
    assert "OTHER_URL" not in script_env(None, secrets={"given-by-db"})
    minimal = script_env({"A": "1"}, inherit=False)
    assert "USER_THING" not in minimal and minimal["A"] == "1" and "PATH" in minimal


def test_the_database_password_given_by_db_stays_hidden_under_any_name(
    tmp_path: Path, pg_fresh_url: str
) -> None:
    """`durable run --db "$DATABASE_URL"`: the URL the engine uses is not in a DURABLE_*
    variable, yet a variable carrying its password must not reach the script."""
    from urllib.parse import urlsplit

    password = urlsplit(pg_fresh_url).password
    assert password, "the test server's URL carries a password"
    (tmp_path / "wf.yaml").write_text(f"name: pgsecret\ntasks:\n  dump:\n    script: {DUMP!r}\n")
    done = durable(
        "run", "wf.yaml", "--db", pg_fresh_url, "--json",
        cwd=tmp_path, env={"DATABASE_URL": pg_fresh_url, "KEEP_ME": "kept"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    env = json.loads(json.loads(done.stdout)["steps"]["dump"]["result"]["stdout"])
    assert env["KEEP_ME"] == "kept"
    assert "DATABASE_URL" not in env
    assert password not in json.dumps(env)
