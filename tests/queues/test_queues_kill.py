"""The admission state survives SIGKILL: three worker processes (SQLite, PostgreSQL) share a
queue of concurrency 3, one is killed while it holds admitted runs. The running count sampled
from the database never exceeds 3 (the dead worker's runs keep their slots until taken over,
and are not admitted twice), and every run ends: nothing lost, nothing stuck."""

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
from qprocs import url_for

from sdk import App

WORKFLOWS = """
import asyncio, os, time
from sdk import App, Context

app = App(poll_interval=0.2, lease_ttl=2.0)
app.queue("emails", concurrency=3, worker_concurrency=2)


@app.step()
async def send(n: int) -> int:
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"start {n} {os.getpid()} {time.time()}\\n")
    await asyncio.sleep(1.0)  # long enough that the victim is killed mid-step
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"end {n} {os.getpid()} {time.time()}\\n")
    return n


@app.workflow
async def email(ctx: Context, n: int) -> int:
    return await send(n)
"""
RUNS = 12


async def start_runs(url: str) -> None:
    workers_app: App = importlib.import_module("wfmod").app
    app = App(url, worker=False)
    app.registry._workflows.update(workers_app.registry._workflows)
    app.queue("emails", concurrency=3, worker_concurrency=2)
    async with app:
        for n in range(RUNS):
            await app.start("email", n, queue="emails", run_id=f"k{n:02}")


async def sample_until_done(url: str, samples: list[int]) -> list[str]:
    async with App(url, worker=False) as app:
        deadline = time.time() + 90
        while time.time() < deadline:
            info = await app.queue_info("emails")
            samples.append(info.running)
            if info.waiting == 0 and info.running == 0:
                break
            await asyncio.sleep(0.05)
        return sorted(r.status for r in await app.list_runs(workflow="email", limit=100))


def in_progress(effects: Path) -> set[str]:
    """The pids of the workers with a step started and not ended."""
    open_steps: dict[tuple[str, str], int] = {}
    for kind, n, pid, *_ in (line.split() for line in effects.read_text().splitlines()):
        open_steps[(n, pid)] = open_steps.get((n, pid), 0) + (1 if kind == "start" else -1)
    return {pid for (_, pid), count in open_steps.items() if count > 0}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_worker_neither_overfills_nor_loses_runs(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = Env(tmp_path, WORKFLOWS)
    env.db = url_for(backend, tmp_path, request)
    effects = tmp_path / "effects.txt"
    effects.touch()
    os.environ["QUEUE_EFFECTS"] = str(effects)
    sys.path.insert(0, str(tmp_path))
    samples: list[int] = []
    try:
        asyncio.run(start_runs(env.db))
        workers = [env.spawn("") for _ in range(3)]
        by_pid = {str(proc.pid): proc for proc in workers}
        try:
            # The victim is a worker caught mid-step (whichever: which worker wins the first
            # admissions is a race, and a worker that never got a run proves nothing).
            until(lambda: bool(in_progress(effects) & by_pid.keys()), 60, "a worker mid-step")
            victim = by_pid[sorted(in_progress(effects) & by_pid.keys())[0]]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.time()
            statuses = asyncio.run(sample_until_done(env.db, samples))
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(timeout=30)
    finally:
        del os.environ["QUEUE_EFFECTS"]
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)
    assert statuses == ["succeeded"] * RUNS
    assert samples and max(samples) <= 3, samples
    lines = [line.split() for line in effects.read_text().splitlines()]
    # Steps in progress at once, from their own times (a killed step ends at the kill): never
    # more than the queue's 3, whichever processes ran them.
    ended = {(x[1], x[2]) for x in lines if x[0] == "end"}
    points = [(float(x[3]), 1) for x in lines if x[0] == "start"]
    points += [(float(x[3]), -1) for x in lines if x[0] == "end"]
    points += [(killed_at, -1) for x in lines if x[0] == "start" and (x[1], x[2]) not in ended]
    level = peak = 0
    for _, step in sorted(points):
        level += step
        peak = max(peak, level)
    assert 2 <= peak <= 3, peak
    started = {x[1] for x in lines}
    assert started == {str(n) for n in range(RUNS)}
    # The victim's runs were taken over by the survivors (their steps ran again there).
    victims = {x[1] for x in lines if x[2] == str(victim.pid)}
    survivors = {x[1] for x in lines if x[2] != str(victim.pid)}
    assert victims and victims <= survivors
