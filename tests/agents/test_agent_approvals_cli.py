"""`durable approvals`, `durable approve`, `durable deny` and the approvals in `durable runs
show`: real `python -m durable` processes on a real SQLite file, while no worker runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from test_agent_approvals import ops_agent, pending

from sdk import App, Context


def durable(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "durable", *args, "--db", f"sqlite:///{tmp_path / 'runs.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


def make_app(tmp_path: Path, deleted: list[str], *, worker: bool) -> App:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", worker=worker, poll_interval=0.05)
    ops = app.agent(ops_agent([], deleted))

    @app.workflow()
    async def cleanup(ctx: Context) -> str:
        return (await ops.run("clean up")).output

    return app


def test_decisions_from_the_command_line(tmp_path: Path) -> None:
    deleted: list[str] = []

    async def create() -> None:
        async with make_app(tmp_path, deleted, worker=True) as app:
            for run_id in ("r1", "r2"):
                await app.start("cleanup", run_id=run_id)
                await pending(app, run_id)

    asyncio.run(create())
    listed = durable(tmp_path, "approvals", "r1")
    assert listed.returncode == 0, listed.stderr
    assert "d1" in listed.stdout and "delete" in listed.stdout and "pending" in listed.stdout
    as_json = json.loads(durable(tmp_path, "approvals", "r1", "--json").stdout)
    assert [(a["tool_call_id"], a["tool_name"], a["args"], a["status"]) for a in as_json] == [
        ("d1", "delete", {"path": "/tmp/x"}, "pending")
    ]
    shown = durable(tmp_path, "runs", "show", "r1")
    assert shown.returncode == 0 and "pending" in shown.stdout and "d1" in shown.stdout

    approved = durable(tmp_path, "approve", "r1", "d1", "--reason", "fine")
    assert approved.returncode == 0, approved.stderr
    assert "tool call d1 (delete) of run r1 approved" in approved.stdout
    again = durable(tmp_path, "deny", "r1", "d1", "--reason", "changed my mind")
    assert again.returncode == 2
    assert "error: tool call 'd1' of run 'r1' was already approved (fine)" in again.stderr
    unknown = durable(tmp_path, "approve", "r2", "zz")
    assert unknown.returncode == 2
    assert "no approval request for tool call 'zz'; pending: 'd1'" in unknown.stderr
    missing = durable(tmp_path, "approve", "nope", "d1")
    assert missing.returncode == 2 and "no run with id 'nope'" in missing.stderr
    no_reason = durable(tmp_path, "deny", "r2", "d1")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    denied = durable(tmp_path, "deny", "r2", "d1", "--reason", "keep it")
    assert denied.returncode == 0 and "denied" in denied.stdout

    async def finish() -> list[str]:
        async with make_app(tmp_path, deleted, worker=True) as app:
            return [await app.handle(r).result(30) for r in ("r1", "r2")]

    assert asyncio.run(finish()) == ["deleted /tmp/x", "keep it"]
    assert deleted == ["/tmp/x"]
    after = json.loads(durable(tmp_path, "approvals", "r2", "--json").stdout)
    assert [(a["status"], a["reason"]) for a in after] == [("denied", "keep it")]
    late = durable(tmp_path, "approve", "r2", "d1")
    assert late.returncode == 2 and "already denied (keep it)" in late.stderr
