"""Queues with three real worker processes on one database (SQLite, PostgreSQL): the global
concurrency and the per-worker concurrency are never exceeded, sampled from the database while
the runs go and measured from the steps' own start and end times, and every run ends."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from procenv import Env, until

from sdk import App

WORKFLOWS = """
import os, time
from sdk import App, Context

app = App(poll_interval=0.2)
app.queue("emails", concurrency=4, worker_concurrency=2)


@app.step()
async def send(n: int) -> int:
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"start {n} {os.getpid()} {time.time()}\\n")
    await __import__("asyncio").sleep(0.4)
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"end {n} {os.getpid()} {time.time()}\\n")
    return n


@app.workflow
async def email(ctx: Context, n: int) -> int:
    return await send(n)
"""
RUNS = 16


def overlap(lines: list[list[str]], pid: str | None = None) -> int:
    """The most steps in progress at once (of one process, if pid is given)."""
    points = sorted(
        (float(t), 1 if kind == "start" else -1)
        for kind, _n, p, t in lines
        if pid is None or p == pid
    )
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


async def start_and_sample(url: str) -> list[int]:
    """Start the runs (queued), then sample the queue's running count until all ended."""
    samples: list[int] = []
    # The workers' module (written to the test's directory): its workflows, to start by name.
    workers_app: App = importlib.import_module("wfmod").app
    app = App(url, worker=False)
    app.registry._workflows.update(workers_app.registry._workflows)
    app.queue("emails", concurrency=4, worker_concurrency=2)
    async with app:
        for n in range(RUNS):
            await app.start("email", n, queue="emails", run_id=f"e{n:02}")
        deadline = time.time() + 90
        while time.time() < deadline:
            info = await app.queue_info("emails")
            samples.append(info.running)
            if info.waiting == 0 and info.running == 0:
                break
            await asyncio.sleep(0.05)
        runs = await app.list_runs(workflow="email", limit=100)
        assert sorted(r.status for r in runs) == ["succeeded"] * RUNS
    return samples


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_three_workers_keep_global_and_per_worker_concurrency(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = Env(tmp_path, WORKFLOWS)
    if backend == "postgres":
        env.db = request.getfixturevalue("pg_fresh_url")
    effects = tmp_path / "effects.txt"
    effects.touch()
    os.environ["QUEUE_EFFECTS"] = str(effects)
    sys.path.insert(0, str(tmp_path))
    try:
        workers = [env.spawn("") for _ in range(3)]
        try:
            until(lambda: len(list(tmp_path.glob("worker-*.log"))) > 0, 10)
            samples = asyncio.run(start_and_sample(env.db))
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(timeout=30)
    finally:
        del os.environ["QUEUE_EFFECTS"]
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)
    lines = [line.split() for line in effects.read_text().splitlines()]
    assert len([x for x in lines if x[0] == "end"]) == RUNS
    assert max(samples) <= 4, samples
    assert overlap(lines) <= 4
    pids = {x[2] for x in lines}
    assert len(pids) >= 2, "the runs were shared between the workers"
    assert all(overlap(lines, pid) <= 2 for pid in pids)
    # The limit was reached (so the checks above could have failed).
    assert overlap(lines) >= 3
