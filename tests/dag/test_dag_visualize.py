"""`durable visualize` draws a DAG run with its definition's edges without the application:
from the definition the run recorded (`durable run FILE`) or the one stored in the database
(registered over HTTP), and says so when it has neither."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durable._definitions import store_definition
from sdk import App

# a -> (b, c) -> d, declared in an order that position order would draw as a chain.
DIAMOND = {
    "id": "stored-diamond",
    "steps": [
        {"id": "a", "action": "transform", "params": {"code": "return 1"}},
        {"id": "b", "dependencies": ["a"]},
        {"id": "c", "dependencies": ["a"]},
        {"id": "d", "dependencies": ["b", "c"]},
    ],
}
EDGES = {"n0 --> n1", "n0 --> n2", "n1 --> n3", "n2 --> n3"}


def visualize(db: Path, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    return subprocess.run(
        [sys.executable, "-m", "durable", "visualize", run_id, "--db", f"sqlite:///{db}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.asyncio
async def test_a_run_of_a_stored_definition_is_drawn_without_the_app(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    app = App(f"sqlite:///{db}")
    async with app:
        wf, created = await store_definition(
            app.engine.store, app.engine.registry, json.dumps(DIAMOND)
        )
        assert created
        result = await app.run_dag(wf.name, None, timeout=60)
        assert result.status == "succeeded"
    proc = visualize(db, result.run_id, "--format", "mermaid")
    assert proc.returncode == 0, proc.stderr
    assert {line.strip() for line in proc.stdout.splitlines() if "-->" in line} == EDGES
    assert "note:" not in proc.stdout


def test_a_dag_run_whose_definition_is_nowhere_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(
        "name: lost\ntasks:\n  a: {}\n  b: {}\n  c:\n    depends_on: [a, b]\n"
    )
    db = tmp_path / "runs.db"
    script = (
        "import asyncio, sys\n"
        "from sdk import App\n"
        "async def main():\n"
        f"    app = App('sqlite:///{db}')\n"
        f"    app.register_dag({str(tmp_path / 'flow.yaml')!r})\n"
        "    async with app:\n"
        "        r = await app.run_dag('lost', None, run_id='lost-run', timeout=60)\n"
        "        assert r.status == 'succeeded', r\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    proc = visualize(db, "lost-run")
    assert proc.returncode == 0, proc.stderr
    assert "note: drawn from the recorded steps" in proc.stdout
    assert "--app MODULE:APP" in proc.stdout
