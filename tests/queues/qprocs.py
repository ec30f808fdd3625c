"""What the queue tests with worker processes share: a workload directory (the workflows module
the workers import, and the effects file their steps write `start|end N PID TIME` lines to),
the app a test starts runs with, the effects read back, and the measures taken from them."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from procenv import Env, until

from sdk import App
from storage import FINAL_STATUSES, open_store

# The step every workload's workflow runs: its own start and end times, written by the process
# that runs it (STEP_SECONDS long). `{queue}` is filled in by each test.
WORKFLOWS = """
import asyncio, os, time
from sdk import App, Context

app = App(poll_interval=0.2, lease_ttl=float(os.environ.get("LEASE_TTL", "5")))
{queue}


def mark(kind: str, n: str) -> None:
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"{{kind}} {{n}} {{os.getpid()}} {{time.time()}}\\n")


@app.step()
async def work(n: str) -> str:
    mark("start", n)
    await asyncio.sleep(float(os.environ.get("STEP_SECONDS", "0.1")))
    mark("end", n)
    return n


@app.workflow
async def job(ctx: Context, n: str) -> str:
    return await work(n)
"""


class Step:
    """One line of the effects file."""

    def __init__(self, line: str) -> None:
        kind, n, pid, at = line.split()
        self.kind, self.n, self.pid, self.at = kind, n, pid, float(at)


class Workload:
    def __init__(self, tmp_path: Path, queue: str, url: str | None) -> None:
        self.env = Env(tmp_path, WORKFLOWS.format(queue=queue))
        if url is not None:
            self.env.db = url
        self.effects = tmp_path / "effects.txt"
        self.effects.touch()
        self.workers: list[subprocess.Popen[str]] = []

    def app(self) -> App:
        """An app without a worker that can start the workload's workflow and declares its
        queues (the workers' module, imported here: the test's directory is on sys.path)."""
        workers_app: App = importlib.import_module("wfmod").app
        app = App(self.env.db, worker=False)
        app.registry._workflows.update(workers_app.registry._workflows)
        app.registry.queues.update(workers_app.registry.queues)
        return app

    def spawn(self, count: int, *, ready: bool = False) -> list[subprocess.Popen[str]]:
        """Start `count` workers; with ready, wait until each has opened the database (on a
        loaded machine a worker can take seconds to import and connect)."""
        new = [self.env.spawn("") for _ in range(count)]
        self.workers += new
        if ready:
            total = len(self.workers)
            log = self.env.dir / "worker-.log"
            until(lambda: log.read_text().count("(Ctrl-C to stop)") >= total, 60, "workers up")
        return new

    def steps(self, kind: str | None = None) -> list[Step]:
        found = [Step(line) for line in self.effects.read_text().splitlines() if line.strip()]
        return sorted((s for s in found if kind is None or s.kind == kind), key=lambda s: s.at)

    def first_start(self, n: str) -> float | None:
        return next((s.at for s in self.steps("start") if s.n == n), None)

    def in_progress(self) -> set[str]:
        """The pids of the live workers with a step started and not ended."""
        live = {str(p.pid) for p in self.workers if p.poll() is None}
        level: dict[tuple[str, str], int] = {}
        for s in self.steps():
            level[(s.n, s.pid)] = level.get((s.n, s.pid), 0) + (1 if s.kind == "start" else -1)
        return {pid for (_, pid), count in level.items() if count > 0} & live

    def kill(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def workload(
    tmp_path: Path, queue: str, url: str | None = None, **environ: str
) -> Iterator[Workload]:
    """A workload for the block; its workers are stopped at the end (SIGTERM)."""
    work = Workload(tmp_path, queue, url)
    saved = {k: os.environ.get(k) for k in ("QUEUE_EFFECTS", *environ)}
    os.environ["QUEUE_EFFECTS"] = str(work.effects)
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


def overlap(points: list[tuple[float, int]]) -> int:
    """The most intervals open at once, from (time, +1 start | -1 end) points (an end and a
    start at the same instant: the end first)."""
    level = peak = 0
    for _, step in sorted(points):
        level += step
        peak = max(peak, level)
    return peak


def url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'runs.db'}"


async def admissions(url: str, run_ids: list[str]) -> dict[str, float]:
    """Each run's admission time, as the admitting claim stored it (kept after the run ends)."""
    store = open_store(url)
    await store.open()
    try:
        found: dict[str, float] = {}
        for run_id in run_ids:
            place = await store.run_queue(run_id)
            assert place is not None and place.admitted_at is not None, (run_id, place)
            found[run_id] = place.admitted_at
        return found
    finally:
        await store.close()


async def wait_all_ended(app: App, workflow: str, count: int, timeout: float) -> list[str]:
    """Wait until `count` runs of the workflow have ended; their statuses."""
    deadline = time.monotonic() + timeout
    while True:
        runs = await app.list_runs(workflow=workflow, limit=count + 10)
        ended = [r.status for r in runs if r.status in FINAL_STATUSES]
        if len(ended) >= count or time.monotonic() > deadline:
            return sorted(ended)
        await asyncio.sleep(0.2)
