"""What the cross-process events/queries tests share: the workflows module the `durable worker`
subprocesses import (wfmod), and an app in the test's process that knows its workflows but
executes nothing (the worker subprocess does)."""

from __future__ import annotations

import asyncio
import importlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from procenv import Env

from durable.events import ValueSet
from sdk import App

WORKFLOWS = """
import asyncio, os
from pathlib import Path
from sdk import App, Context

app = App(poll_interval=0.2, lease_ttl=float(os.environ.get("LEASE_TTL", "5")))


@app.step()
async def add(a: int, b: int) -> int:
    return a + b


@app.step()
async def hold(name: str) -> str:
    # Holds the run executing (in this worker) until the test creates the file.
    path = Path(os.environ["TALK_DIR"]) / name
    while not path.exists():
        await asyncio.sleep(0.05)
    return path.read_text()


@app.workflow
async def talker(ctx: Context, n: int) -> int:
    state = {"total": 0, "phase": "start"}
    ctx.on_query("state", lambda: dict(state))
    ctx.on_query("plus", lambda k: state["total"] + k)
    ctx.on_query("step", lambda: add(1, 2))
    ctx.set_event("phase", "started")
    state["total"] = await add(n, 1)
    ctx.set_event("total", state["total"])
    state["phase"] = "holding"
    state["note"] = await hold("go")
    ctx.set_event("phase", "released")
    state["phase"] = "waiting"
    await ctx.wait_for_signal("finish")
    state["phase"] = "done"
    return state["total"]
"""


class Talk:
    def __init__(self, tmp_path: Path, url: str | None) -> None:
        self.env = Env(tmp_path, WORKFLOWS)
        if url is not None:
            self.env.db = url
        self.dir = tmp_path
        self.workers: list[subprocess.Popen[str]] = []

    def app(self) -> App:
        workers_app: App = importlib.import_module("wfmod").app
        app = App(self.env.db, worker=False, poll_interval=0.2)
        app.registry._workflows.update(workers_app.registry._workflows)
        return app

    def spawn(self) -> subprocess.Popen[str]:
        proc = self.env.spawn("")
        self.workers.append(proc)
        return proc

    def release(self, text: str = "ok") -> None:
        (self.dir / "go").write_text(text)

    def kill(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log(self) -> str:
        path = self.dir / "worker-.log"
        return path.read_text()[-4000:] if path.exists() else ""


@contextmanager
def talk(tmp_path: Path, url: str | None = None, **environ: str) -> Iterator[Talk]:
    import os

    work = Talk(tmp_path, url)
    saved = {k: os.environ.get(k) for k in ("TALK_DIR", *environ)}
    os.environ["TALK_DIR"] = str(tmp_path)
    os.environ.update(environ)  # the workers inherit them
    sys.path.insert(0, str(tmp_path))
    try:
        yield work
    finally:
        work.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)


@contextmanager
def serving(workdir: Path, *args: str, env: dict[str, str]) -> Iterator[Any]:
    """`durable serve` as tests/api runs it (tests/api/serving.py, reached by path: this
    directory is not tests/api)."""
    api_dir = str(Path(__file__).resolve().parent.parent / "api")
    if api_dir not in sys.path:
        sys.path.append(api_dir)
    import serving as api_serving

    with api_serving.serve(workdir, *args, env=env) as served:
        yield served


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'runs.db'}"


async def value_sets(app: App, run_id: str) -> list[tuple[int, str]]:
    logged = await app.engine.client.events(run_id)
    return [(e.seq, e.event.key) for e in logged if isinstance(e.event, ValueSet)]


async def until_phase(app: App, run_id: str, phase: str, timeout: float = 60) -> None:
    """Until the run's query says `phase` (the replay sees what its log holds)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = (await app.query(run_id, "state"))["phase"]
        if seen == phase:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached phase {phase!r} (last: {seen!r})")
