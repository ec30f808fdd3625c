"""`durable wait`: real `python -m durable` processes on a real SQLite file, waiting for runs
that a worker in another process finishes (or never does)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from test_cli_control import durable, make_app


def _create(tmp_path: Path) -> None:
    async def create() -> None:
        async with make_app(tmp_path, worker=False) as app:
            await app.start("gate", run_id="r1")
            await app.start("gate", run_id="r2")

    asyncio.run(create())


def test_wait_returns_when_a_worker_elsewhere_finishes_the_run(tmp_path: Path) -> None:
    _create(tmp_path)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    waiter = subprocess.Popen(
        [sys.executable, "-m", "durable", "wait", "r1", "--timeout", "60", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    assert waiter.poll() is None, "wait returned before the run finished"

    async def finish() -> Any:
        async with make_app(tmp_path, worker=True) as app:
            await app.signal("r1", "go", {"ok": True})
            return await app.handle("r1").result(20)

    assert asyncio.run(finish()) == {"ok": True}
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert out.strip() == "run r1 succeeded"


def test_wait_exit_statuses(tmp_path: Path) -> None:
    _create(tmp_path)
    unfinished = durable(tmp_path, "wait", "r2", "--timeout", "0.5")
    assert unfinished.returncode == 3, unfinished.stderr
    assert "run r2 has not finished after 0.5 s" in unfinished.stderr
    assert durable(tmp_path, "cancel", "r2").returncode == 0

    async def finish() -> str:
        async with make_app(tmp_path, worker=True) as app:
            return (await app.handle("r2").info()).status if await _ended(app) else "?"

    async def _ended(app: Any) -> bool:
        for _ in range(400):
            if (await app.get_run("r2")).status == "cancelled":
                return True
            await asyncio.sleep(0.05)
        return False

    assert asyncio.run(finish()) == "cancelled"
    cancelled = durable(tmp_path, "wait", "r2")
    assert cancelled.returncode == 1 and cancelled.stdout.strip() == "run r2 cancelled"
    missing = durable(tmp_path, "wait", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr
    bad = durable(tmp_path, "wait", "r1", "--timeout", "0")
    assert bad.returncode == 2 and "--timeout" in bad.stderr
