"""`durable signal`, `durable cancel` and `durable prune`: real `python -m durable` processes on
a real SQLite file, with runs that no worker executes while the commands run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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


def make_app(tmp_path: Path, *, worker: bool) -> App:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", worker=worker, poll_interval=0.05)

    @app.workflow(name="gate")
    async def gate(ctx: Context) -> Any:
        return await ctx.wait_for_signal("go")

    return app


def test_signal_cancel_and_prune_from_the_command_line(tmp_path: Path) -> None:
    async def create() -> None:
        async with make_app(tmp_path, worker=False) as app:
            await app.start("gate", run_id="r1")
            await app.start("gate", run_id="r2")

    asyncio.run(create())
    sent = durable(tmp_path, "signal", "r1", "go", "--data", '{"x": 1}')
    assert sent.returncode == 0, sent.stderr
    assert "signal 'go' sent to run r1" in sent.stdout
    bad = durable(tmp_path, "signal", "r1", "go", "--data", "{nope")
    assert bad.returncode == 2 and "--data is not valid JSON" in bad.stderr
    missing = durable(tmp_path, "signal", "nope", "go")
    assert missing.returncode == 2 and "nope" in missing.stderr
    cancelled = durable(tmp_path, "cancel", "r2", "--reason", "not needed")
    assert cancelled.returncode == 0, cancelled.stderr

    async def finish() -> tuple[Any, str, str]:
        async with make_app(tmp_path, worker=True) as app:
            result = await app.handle("r1").result(20)
            for _ in range(200):
                info = await app.get_run("r2")
                if info.status == "cancelled":
                    break
                await asyncio.sleep(0.05)
            last = (await app.events("r2"))[-1].event
            return result, info.status, getattr(last, "reason", "")

    result, status, reason = asyncio.run(finish())
    assert result == {"x": 1}
    assert (status, reason) == ("cancelled", "not needed")
    again = durable(tmp_path, "cancel", "r2")
    assert again.returncode == 2 and "already ended cancelled" in again.stderr

    kept = durable(tmp_path, "prune", "--older-than", "30d")
    assert kept.returncode == 0 and "deleted 0 finished runs" in kept.stdout
    wrong = durable(tmp_path, "prune", "--older-than", "soon")
    assert wrong.returncode == 2 and "is not an age" in wrong.stderr
    pruned = durable(tmp_path, "prune", "--older-than", "0s")
    assert pruned.returncode == 0 and "deleted 2 finished runs" in pruned.stdout
    listed = durable(tmp_path, "runs", "list")
    assert "no runs" in listed.stdout


@pytest.mark.parametrize("age", ["1x", "", "-3d"])
def test_prune_refuses_a_bad_age(tmp_path: Path, age: str) -> None:
    (tmp_path / "runs.db").touch()
    proc = durable(tmp_path, "prune", "--older-than", age)
    assert proc.returncode == 2
    assert "--older-than" in proc.stderr or "is not an age" in proc.stderr
