"""`durable history export`, `durable replay --history`, `durable diff` and `durable visualize`,
run as real subprocesses against real SQLite files (the app and runs of test_cli.py)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
import test_cli
from test_cli import APP, CREATE, user_error

from storage import open_store

REPO = Path(__file__).resolve().parent.parent
CHANGED = APP.replace("b = await double(a)", "b = await triple(a)")
MORE_RUNS = """\
import asyncio
from {module} import app

async def main():
    async with app:
        await app.run("order", {n}, run_id="{run_id}")

asyncio.run(main())
"""
DAG = """\
name: diamond
tasks:
  a: {}
  b:
    depends_on: [a]
  c:
    depends_on: [a]
    matrix:
      x: [1, 2]
  d:
    depends_on: [b, c]
"""
DAG_APP = """\
from pathlib import Path
from sdk import App

app = App()
app.register_dag(str(Path(__file__).with_name("diamond.yaml")))
"""


class Project(test_cli.Project):
    """test_cli's project, with this checkout first on the subprocesses' import path: the
    commands under test must come from here, not from wherever durable is installed."""

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env(**extra)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), str(REPO), str(REPO / "tests")])
        return env

    def ok(self, *args: str) -> str:
        proc = self.cli(*args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """ok-run (order(3)), bad-run (failing(4)), same-run (order(3) again), four-run (order(4)),
    and tri-run: order(3) by changed code that calls triple() at position 1."""
    project = Project(tmp_path_factory.mktemp("history"))
    (project.root / "cliapp_v2.py").write_text(CHANGED)
    project.python(CREATE)
    project.python(MORE_RUNS.format(module="cliapp", n=3, run_id="same-run"))
    project.python(MORE_RUNS.format(module="cliapp", n=4, run_id="four-run"))
    project.python(MORE_RUNS.format(module="cliapp_v2", n=3, run_id="tri-run"))
    return project


def export(project: Project, run_id: str) -> dict[str, Any]:
    path = project.root / f"{run_id}.json"
    out = project.ok("history", "export", run_id, "-o", str(path))
    assert out.strip().startswith(f"exported run {run_id} (") and out.strip().endswith(str(path))
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


# -- history export ------------------------------------------------------------------------


async def test_export_keeps_the_stored_bytes_and_renders_them(runs: Project) -> None:
    exported = export(runs, "ok-run")
    assert (exported["format"], exported["version"]) == ("durable.history", 1)
    store = open_store(runs.url)
    await store.open()
    try:
        stored = await store.read_events("ok-run")
        row = await store.get_run("ok-run")
    finally:
        await store.close()
    assert row is not None

    events = exported["events"]
    assert [(e["seq"], e["type"], e["at"]) for e in events] == [
        (r.seq, r.type, r.created_at) for r in stored
    ]
    assert [base64.b64decode(e["data"]) for e in events] == [r.data for r in stored]
    assert events[1]["decoded"] == {"pos": 0, "name": "double", "attempt": 1, "input": [[3], {}]}
    assert events[-1]["decoded"]["result"] == {"total": 12, "size": 3}
    assert events[0]["time"].endswith("Z")
    run = exported["run"]
    assert (run["run_id"], run["workflow"], run["status"], run["input"]) == (
        "ok-run",
        "order",
        "succeeded",
        3,
    )
    assert base64.b64decode(run["raw_result"]) == row.result
    assert "owner" not in run and "lease_expires_at" not in run  # a worker's, not the run's


def test_export_to_stdout_and_errors(runs: Project) -> None:
    from_stdout = json.loads(runs.ok("history", "export", "bad-run"))
    assert from_stdout["run"]["status"] == "failed"
    assert from_stdout["events"][2]["decoded"]["error"]["message"] == "boom 4"
    assert "no run with id 'nope'" in user_error(runs.cli("history", "export", "nope"))
    missing = str(runs.root / "no" / "dir" / "x.json")
    assert "cannot write" in user_error(runs.cli("history", "export", "ok-run", "-o", missing))


# -- replay --history ----------------------------------------------------------------------


@pytest.mark.parametrize(("module", "status"), [("cliapp", 0), ("cliapp_v2", 1)])
def test_replay_from_a_file_is_replay_from_the_database(
    runs: Project, module: str, status: int, tmp_path: Path
) -> None:
    path = runs.root / "ok-run.json"
    runs.ok("history", "export", "ok-run", "-o", str(path))
    nowhere = f"sqlite:///{tmp_path / 'none' / 'x.db'}"
    human = ""
    for extra in ([], ["--json"]):
        from_db = runs.cli("replay", "ok-run", "--app", f"{module}:app", *extra)
        # No database at all: the file is enough.
        from_file = runs.cli(
            "replay",
            "--history",
            str(path),
            "--app",
            f"{module}:app",
            *extra,
            DURABLE_DATABASE_URL=nowhere,
        )
        assert from_db.returncode == from_file.returncode == status, from_file.stderr
        assert from_file.stdout == from_db.stdout
        human = human or from_file.stdout
    assert not (tmp_path / "none").exists()
    if status:
        assert "side by side at position 1 (event #4)" in human


def test_replay_history_until(runs: Project) -> None:
    path = runs.root / "ok-run.json"
    runs.ok("history", "export", "ok-run", "-o", str(path))
    from_file = json.loads(runs.ok("replay", "--history", str(path), "--until", "4", "--json"))
    from_db = json.loads(runs.ok("replay", "ok-run", "--until", "4", "--json"))
    assert from_file == from_db and from_file["status"] == "running"


def test_replay_refuses_files_of_another_format_or_version(runs: Project) -> None:
    good = export(runs, "ok-run")
    contents = {
        "v2.json": json.dumps({**good, "version": 2}),
        "other.json": json.dumps({**good, "format": "other"}),
        "list.json": json.dumps([1, 2]),
        "text.json": "not json at all",
    }
    expected = {
        "v2.json": "of version 2; this durable reads version 1 only",
        "other.json": "its format is 'other'",
        "list.json": "its format is None",
        "text.json": "is not an exported history (not JSON",
    }
    for name, content in contents.items():
        (runs.root / name).write_text(content)
        args = ["replay", "--history", str(runs.root / name), "--app", "cliapp:app"]
        assert expected[name] in user_error(runs.cli(*args)), name
    gone = ["replay", "--history", str(runs.root / "gone.json"), "--app", "cliapp:app"]
    assert "cannot read history file" in user_error(runs.cli(*gone))


def test_replay_needs_exactly_one_source(runs: Project) -> None:
    path = str(runs.root / "ok-run.json")
    runs.ok("history", "export", "ok-run", "-o", path)
    both = runs.cli("replay", "ok-run", "--history", path, "--app", "cliapp:app")
    assert "exactly one of them" in user_error(both)
    assert "exactly one of them" in user_error(runs.cli("replay", "--app", "cliapp:app"))


# -- diff ------------------------------------------------------------------------------------


def test_diff_ignores_times_and_ids(runs: Project) -> None:
    proc = runs.cli("diff", "ok-run", "same-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the same history (8 events)" in proc.stdout


def rows(out: str) -> dict[str, list[str]]:
    """Table rows by their first word (a '*' marks a differing row and comes first)."""
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["*"]:
            found["*" + words[1]] = words[2:]
        elif words:
            found.setdefault(words[0], words[1:])
    return found


def test_diff_names_the_first_differing_event_and_the_steps(runs: Project) -> None:
    proc = runs.cli("diff", "ok-run", "tri-run")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "first difference at event #4" in proc.stdout
    table = rows(proc.stdout)
    assert table["*name"] == ["double", "triple"]
    assert table["pos"] == ["1", "1"] and table["type"] == ["StepStarted", "StepStarted"]
    assert table["1"] == ["double", "12", "18"]  # the one step whose result differs
    assert "0" not in table and "2" not in table
    data = json.loads(runs.cli("diff", "ok-run", "tri-run", "--json").stdout)
    assert (data["identical"], data["first_difference"]) == (False, 4)
    assert [s["position"] for s in data["steps"]] == [1]
    assert (data["steps"][0]["a"]["result"], data["steps"][0]["b"]["name"]) == (12, "triple")


def test_diff_of_different_inputs_and_of_a_failed_run(runs: Project) -> None:
    proc = runs.cli("diff", "ok-run", "four-run")
    assert proc.returncode == 1
    assert "first difference at event #1" in proc.stdout and rows(proc.stdout)["*input"] == [
        "3",
        "4",
    ]
    failed = runs.cli("diff", "ok-run", "bad-run")
    assert failed.returncode == 1
    table = rows(failed.stdout)
    assert table["*workflow"] == ["order", "failing"]
    assert table["0"][:3] == ["double", "6", "failed:"] and "boom 4" in failed.stdout
    assert table["1"] == ["double", "12", "(no", "such", "step)"]
    assert "no run with id 'nope'" in user_error(runs.cli("diff", "ok-run", "nope"))


# -- visualize --------------------------------------------------------------------------------


def test_visualize_a_python_run(runs: Project) -> None:
    ascii_out = runs.ok("visualize", "ok-run")
    lines = ascii_out.splitlines()
    assert lines[0] == "run ok-run (order@1, succeeded): 3 steps in position order"
    assert lines[1].startswith("note: drawn from the recorded steps")
    names = [line.split()[1] for line in lines if line.strip().startswith("#")]
    assert names == ["double", "double", "blob"]
    assert "no step" not in ascii_out and "[succeeded " in ascii_out
    with_app = runs.ok("visualize", "ok-run", "--app", "cliapp:app")
    assert "note:" not in with_app
    mermaid = runs.ok("visualize", "ok-run", "--format", "mermaid").splitlines()
    assert mermaid[0] == "flowchart TD"
    assert [m.strip() for m in mermaid if "-->" in m] == ["n0 --> n1", "n1 --> n2"]
    assert "  class n2 succeeded" in mermaid
    assert any(m.startswith("  classDef succeeded fill:") for m in mermaid)
    failed = runs.ok("visualize", "bad-run", "--format", "dot")
    assert failed.startswith('digraph "run bad-run (failing@1, failed)" {')
    assert 'class="failed", fillcolor="#ffebe9"' in failed and "->" not in failed


def test_visualize_a_dag_run(tmp_path: Path) -> None:
    project = Project(tmp_path)
    (tmp_path / "diamond.yaml").write_text(DAG)
    (tmp_path / "dagapp.py").write_text(DAG_APP)
    project.ok("run", "diamond.yaml", "--run-id", "d1")
    mermaid = project.ok("visualize", "d1", "--app", "dagapp:app", "--format", "mermaid")
    edges = {line.strip() for line in mermaid.splitlines() if "-->" in line}
    assert edges == {"n0 --> n1", "n0 --> n2", "n1 --> n3", "n2 --> n3"}
    assert mermaid.count("class n") == 4 and "succeeded" in mermaid
    ascii_out = project.ok("visualize", "d1", "--app", "dagapp:app")
    assert "run d1 (diamond@1, succeeded): 4 steps with the definition's edges" in ascii_out
    d_line = next(line for line in ascii_out.splitlines() if line.strip().startswith("d "))
    assert d_line.endswith("<- b, c")
    assert "attempts" not in ascii_out  # two matrix instances are not two attempts
    # Without the app: `durable run FILE` recorded the definition in the run, so the
    # edges are the definition's, even once the file has changed or is gone.
    (tmp_path / "diamond.yaml").unlink()
    bare = project.ok("visualize", "d1", "--format", "mermaid")
    assert {line.strip() for line in bare.splitlines() if "-->" in line} == edges
    assert "note:" not in bare
    assert project.ok("visualize", "d1") == ascii_out
