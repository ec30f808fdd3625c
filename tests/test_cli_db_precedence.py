"""`durable worker`: --db, else $DURABLE_DATABASE_URL, else the URL written in the app."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sdk import App, Context

APP = """
from sdk import App, Context

app = App("sqlite:///{baked}")

@app.workflow(name="hello")
async def hello(ctx: Context, name: str) -> str:
    return "hello " + name
"""


async def _pending_run(db: Path) -> None:
    client = App(f"sqlite:///{db}", worker=False)

    @client.workflow(name="hello")
    async def hello(ctx: Context, name: str) -> str:
        return "hello " + name

    async with client:
        await client.start(hello, "env", run_id="r1")


def _status(db: Path) -> str | None:
    import sqlite3

    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status FROM durable_runs WHERE run_id = 'r1'").fetchone()
    return None if row is None else str(row[0])


def test_the_environment_beats_the_url_written_in_the_app(tmp_path: Path) -> None:
    baked, from_env = tmp_path / "baked.db", tmp_path / "env.db"
    (tmp_path / "precedence_app.py").write_text(textwrap.dedent(APP.format(baked=baked)))
    asyncio.run(_pending_run(from_env))
    env = {
        **os.environ,
        "DURABLE_DATABASE_URL": f"sqlite:///{from_env}",
        "PYTHONPATH": str(tmp_path),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "durable", "worker", "precedence_app:app", "--poll-interval", "0.1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while _status(from_env) != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=30)
    assert _status(from_env) == "succeeded", out
    assert not baked.exists()  # the app's own URL was never opened
    assert worker.returncode == 0, out
