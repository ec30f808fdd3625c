"""What code a DAG definition may run and what of the worker's environment its expressions see.

`function:` resolves only to functions the application registered (app.register_function) or
to modules the operator allowed (App(allowed_function_modules=...), --allow-module); anything
else is refused when the definition is registered, and never imported. `{{ env.X }}` sees only
the variables the operator exposed (App(expose_env=...), --expose-env)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durable import WorkflowDefinitionError
from durable.dag import DagResult, parse_definition
from sdk import App

OS_SYSTEM = """\
name: rce
tasks:
  pwn:
    function: "os:system"
    params: {{command: "touch {marker}"}}
"""


def durable(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    base["PYTHONPATH"] = os.pathsep.join([str(cwd), base.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env={**base, **(env or {})},
    )


@pytest.fixture
def user_package(tmp_path: Path) -> Iterator[Path]:
    """An importable package `trustpkg` (with a `tasks` module) and a look-alike `trustpkg2`."""
    pkg = tmp_path / "trustpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(
        textwrap.dedent(
            """
            import os
            from json import dumps as borrowed

            def scale(values, factor):
                return [v * factor for v in values]

            def _hidden():
                return "private"
            """
        )
    )
    (tmp_path / "trustpkg2.py").write_text("def scale(values, factor):\n    return 'imported'\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("trustpkg", "trustpkg.tasks", "trustpkg2"):
            sys.modules.pop(name, None)


async def run_text(app: App, tmp_path: Path, text: str, input: Any = None) -> DagResult:
    definition = parse_definition(
        textwrap.dedent(text), str(tmp_path / "wf.yaml"), known_actions=app.registry.actions
    )
    async with app:
        name = app.register_dag(definition)
        return await app.run_dag(name, input, timeout=120)


# -- function: -----------------------------------------------------------------------------


def test_durable_run_refuses_os_system_and_never_calls_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "wf.yaml").write_text(OS_SYSTEM.format(marker=marker))
    done = durable("run", "wf.yaml", "--db", f"sqlite:///{tmp_path / 'r.db'}", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert not marker.exists()
    assert "Traceback" not in done.stderr
    # What, where, how to fix it.
    assert "step 'pwn'" in done.stderr
    assert "'os:system'" in done.stderr
    assert "register_function" in done.stderr and "--allow-module" in done.stderr
    assert "wf.yaml:4" in done.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was written


def test_durable_run_dry_run_reports_the_refusal_too(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(OS_SYSTEM.format(marker=tmp_path / "pwned"))
    done = durable("run", "wf.yaml", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'os:system'" in done.stderr


async def test_register_dag_refuses_an_unregistered_function(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    app = App(f"sqlite:///{tmp_path / 'r.db'}")
    definition = parse_definition(OS_SYSTEM.format(marker=marker), str(tmp_path / "wf.yaml"))
    with pytest.raises(WorkflowDefinitionError) as caught:
        app.register_dag(definition)
    message = str(caught.value)
    assert "step 'pwn'" in message and "'os:system'" in message
    assert "app.register_function" in message and "allowed_function_modules" in message
    assert not marker.exists()


def double(values: list[int]) -> list[int]:
    return [v * 2 for v in values]


async def test_a_registered_function_runs_under_its_default_or_given_name(
    tmp_path: Path,
) -> None:
    async def triple(values: list[int]) -> list[int]:
        return [v * 3 for v in values]

    app = App(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(WorkflowDefinitionError, match="pass name="):
        app.register_function(triple)  # a nested function has no importable name
    assert app.register_function(double) is double
    app.register_function(triple, name="shop.math:triple")
    default_name = f"{double.__module__}:{double.__qualname__}"
    result = await run_text(
        app,
        tmp_path,
        f"""
        name: registered
        tasks:
          a: {{function: "{default_name}", params: {{values: [1, 2]}}}}
          b: {{function: "shop.math:triple", params: {{values: [1, 2]}}}}
        """,
    )
    assert result.status == "succeeded", result.error
    assert result.steps["a"].result == [2, 4]
    assert result.steps["b"].result == [3, 6]


def test_register_function_refuses_bad_names_and_duplicates(tmp_path: Path) -> None:
    app = App("memory://")

    def one() -> int:
        return 1

    def two() -> int:
        return 2

    with pytest.raises(WorkflowDefinitionError, match="'module:function'"):
        app.register_function(one, name="no colon")
    app.register_function(one, name="x:f")
    app.register_function(one, name="x:f")  # the same function again is fine
    with pytest.raises(WorkflowDefinitionError, match="two different functions"):
        app.register_function(two, name="x:f")
    with pytest.raises(WorkflowDefinitionError, match="callable"):
        app.register_function("x:f", name="y:g")  # type: ignore[type-var]


async def test_allowed_modules_match_on_package_boundaries(
    tmp_path: Path, user_package: Path
) -> None:
    app = App(f"sqlite:///{tmp_path / 'r.db'}", allowed_function_modules=["trustpkg"])
    result = await run_text(
        app,
        tmp_path,
        """
        name: allowed
        tasks:
          a: {function: "trustpkg.tasks:scale", params: {values: [1, 2], factor: 5}}
        """,
    )
    assert result.status == "succeeded", result.error
    assert result.steps["a"].result == [5, 10]
    refused = parse_definition(
        'name: lookalike\ntasks:\n  a: {function: "trustpkg2:scale"}\n', "other.yaml"
    )
    with pytest.raises(WorkflowDefinitionError, match="'trustpkg2:scale'"):
        app.register_dag(refused)
    assert "trustpkg2" not in sys.modules  # refused without being imported


async def test_an_allowed_module_is_no_door_to_what_it_imports(
    tmp_path: Path, user_package: Path
) -> None:
    marker = tmp_path / "pwned"
    app = App(f"sqlite:///{tmp_path / 'r.db'}", allowed_function_modules=["trustpkg.tasks"])
    result = await run_text(
        app,
        tmp_path,
        f"""
        name: reach_through
        tasks:
          shell: {{function: "trustpkg.tasks:os.system", params: {{command: "touch {marker}"}}}}
          borrowed: {{function: "trustpkg.tasks:borrowed", params: {{obj: 1}}}}
          private: {{function: "trustpkg.tasks:_hidden"}}
        """,
    )
    assert not marker.exists()
    assert result.steps["shell"].status == "failed"
    assert "defined in module 'posix'" in (result.steps["shell"].error or "")
    assert result.steps["borrowed"].status == "failed"
    assert "defined in module 'json'" in (result.steps["borrowed"].error or "")
    assert result.steps["private"].status == "failed"
    assert "private" in (result.steps["private"].error or "")


def test_durable_run_allow_module_option(tmp_path: Path, user_package: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        'name: cli_allowed\ntasks:\n  a: {function: "trustpkg.tasks:scale", '
        "params: {values: [2], factor: 3}}\n"
    )
    db = f"sqlite:///{tmp_path / 'r.db'}"
    refused = durable("run", "wf.yaml", "--db", db, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    allowed = durable(
        "run", "wf.yaml", "--db", db, "--allow-module", "trustpkg", "--json", cwd=tmp_path
    )
    assert allowed.returncode == 0, allowed.stderr
    assert '"result":[6]' in allowed.stdout.replace(" ", "").replace("\n", "")
    # The same through the environment, for workers started by a process manager.
    by_env = durable(
        "run", "wf.yaml", "--db", db, "--run-id", "second", cwd=tmp_path,
        env={"DURABLE_ALLOW_MODULES": "trustpkg.tasks"},
    )  # fmt: skip
    assert by_env.returncode == 0, by_env.stderr


# -- env in expressions ----------------------------------------------------------------------

SEES_ENV = """
name: sees_env
tasks:
  look:
    script: 'echo "$SEEN"'
    environment:
      SEEN: '{{ JSON.stringify(Object.keys(env).sort()) }}'
  region:
    action: condition
    params: {expression: 'env.REGION === "eu-west-1" && env.SECRET_TOKEN === undefined'}
"""


async def test_expressions_see_no_environment_variable_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("REGION", "eu-west-1")
    result = await run_text(App(f"sqlite:///{tmp_path / 'r.db'}"), tmp_path, SEES_ENV)
    assert result.steps["look"].result["stdout"].strip() == "[]"
    assert result.steps["region"].result is False


async def test_expressions_see_the_allowed_variables_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("REGION", "eu-west-1")
    monkeypatch.setenv("APP_MODE", "blue")
    monkeypatch.setenv("DURABLE_API_TOKEN", "tok")
    app = App(f"sqlite:///{tmp_path / 'r.db'}", expose_env=["REGION", "APP_*", "NOT_SET"])
    result = await run_text(app, tmp_path, SEES_ENV)
    assert result.steps["look"].result["stdout"].strip() == '["APP_MODE","REGION"]'
    assert result.steps["region"].result is True


def test_expose_env_rejects_bad_names() -> None:
    with pytest.raises(WorkflowDefinitionError, match="expose_env"):
        App("memory://", expose_env=["BAD NAME"])
    with pytest.raises(WorkflowDefinitionError, match="allowed_function_modules"):
        App("memory://", allowed_function_modules=["not a module"])


def test_durable_run_expose_env_option(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "name: cli_env\ntasks:\n  look:\n    action: condition\n"
        "    params: {expression: 'env.REGION === \"eu\" && env.SECRET_TOKEN === undefined'}\n"
    )
    db = f"sqlite:///{tmp_path / 'r.db'}"
    env = {"REGION": "eu", "SECRET_TOKEN": "s3cret"}
    hidden = durable("run", "wf.yaml", "--db", db, "--json", cwd=tmp_path, env=env)
    assert hidden.returncode == 0, hidden.stderr
    assert '"result":false' in hidden.stdout.replace(" ", "")
    shown = durable(
        "run", "wf.yaml", "--db", db, "--json", "--run-id", "two",
        "--expose-env", "REGION", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert '"result":true' in shown.stdout.replace(" ", "")
    by_env = durable(
        "run", "wf.yaml", "--db", db, "--json", "--run-id", "three", cwd=tmp_path,
        env={**env, "DURABLE_EXPOSE_ENV": "REGION SECRET_X"},
    )  # fmt: skip
    assert '"result":true' in by_env.stdout.replace(" ", ""), by_env.stderr


WORKER_DAG = """
name: worker_env
tasks:
  look:
    action: condition
    params: {expression: 'env.REGION === "eu" && env.SECRET_TOKEN === undefined'}
"""
WORKER_APP = f"""
import os
from sdk import App
from durable.dag import parse_definition

app = App(os.environ["TEST_DB"], poll_interval=0.1)
app.register_dag(parse_definition({WORKER_DAG!r}, "worker_env.yaml"))
"""


async def test_durable_worker_expose_env_from_its_environment(tmp_path: Path) -> None:
    (tmp_path / "wenv.py").write_text(WORKER_APP)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")} | {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "TEST_DB": db,
        "REGION": "eu",
        "SECRET_TOKEN": "s3cret",
        "DURABLE_EXPOSE_ENV": "REGION",
    }
    worker = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "durable", "worker", "wenv:app", "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        client = App(db, worker=False)
        client.register_dag(parse_definition(WORKER_DAG, "worker_env.yaml"))
        async with client:
            handle = await client.start("worker_env", run_id="w-1")
            await handle.result(60)
            result = await client.dag_result("w-1")
    finally:
        worker.terminate()
        _, err = await asyncio.wait_for(worker.communicate(), 30)
    assert result.steps["look"].result is True, err
