"""A DAG built in Python with a queued matrix step, executed by real worker processes on one
SQLite file: the step's queue `emails` (declared by the builder, concurrency 1) admits one
instance at a time across every run and worker. Measured from the steps' own start and end
times (written by the `send` integration function the JavaScript awaits, in the worker), no two
instances are ever in progress at once. (tests/queues/test_queues_dag.py does the same for the
YAML and JSON formats.)"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from pathlib import Path

from procenv import Env
from test_queues_dag import intervals, most_at_once, sample_until_done

from sdk import App

WORKFLOWS = """
import asyncio, os, time
from sdk import App

app = App(poll_interval=0.2, lease_ttl=2.0)


async def send(key):
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"start {key} {os.getpid()} {time.time()}\\n")
    await asyncio.sleep(0.3)
    with open(os.environ["QUEUE_EFFECTS"], "a") as out:
        out.write(f"end {key} {os.getpid()} {time.time()}\\n")
    return f"sent {key}"


flow = app.dag("mailpy", api={"send": send}, queues={"emails": {"concurrency": 1}})
prep = flow.js("prep", "return 'ready'")
flow.js(
    "send",
    "return await send(`${input.k}-${matrix.n}`);",
    depends=[prep],
    queue="emails",
    matrix={"n": [1, 2, 3]},
)
flow.js("done", "return deps.send.join(', ');", depends=["send"])
app.register_dag(flow)
"""
RUNS = 3
INSTANCES = RUNS * 3


async def start_runs(url: str) -> list[str]:
    workers_app: App = importlib.import_module("wfmod").app
    app = App(url, worker=False)
    app.registry._workflows.update(workers_app.registry._workflows)
    app.registry.queues.update(workers_app.registry.queues)  # declared when it opens
    async with app:
        return [
            (await app.start("mailpy", {"k": f"b{i}"}, run_id=f"b{i}")).run_id for i in range(RUNS)
        ]


def test_a_built_queued_matrix_step_never_overlaps_across_runs_and_workers(
    tmp_path: Path,
) -> None:
    env = Env(tmp_path, WORKFLOWS)
    effects = tmp_path / "effects.txt"
    effects.touch()
    os.environ["QUEUE_EFFECTS"] = str(effects)
    sys.path.insert(0, str(tmp_path))
    samples: list[int] = []
    try:
        workers = [env.spawn("") for _ in range(2)]
        try:
            parents = asyncio.run(start_runs(env.db))
            runs = asyncio.run(sample_until_done(env.db, parents, samples))
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(timeout=30)
    finally:
        del os.environ["QUEUE_EFFECTS"]
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)
    assert [runs[p] for p in parents] == ["succeeded"] * RUNS, runs
    spans = intervals(effects)
    assert len(spans) == INSTANCES
    # Without the step's queue the instances run side by side (checked by dropping
    # queue="emails" from the step: most_at_once was 2).
    assert most_at_once(spans) == 1, sorted(spans)
    assert max(samples) <= 1, samples
    # One child run per instance, named by its parent and position: none started twice.
    children = sorted(r for r in runs if r not in parents)
    assert children == sorted(f"b{i}.{pos}" for i in range(RUNS) for pos in (1, 2, 3))
    assert all(runs[c] == "succeeded" for c in children), runs
