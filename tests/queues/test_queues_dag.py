"""DAG steps on a queue, executed by real worker processes on one database (SQLite,
PostgreSQL): a YAML and a JSON definition both run a matrix step on the queue `emails` of
concurrency 1, several runs at once on three workers. Measured from the steps' own start and
end times, no two instances of the queued step are ever in progress at once, whichever run or
worker they belong to; every run succeeds, each instance ran as one child run in the queue.
A worker SIGKILLed while it runs an instance changes none of that: the child is taken over, not
started again, and the queue's slot is not given twice."""

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
import os
from sdk import App

HERE = os.path.dirname(os.path.abspath(__file__))
app = App(poll_interval=0.2, lease_ttl=2.0)
app.register_dag(os.path.join(HERE, "mail.yaml"))
app.register_dag(os.path.join(HERE, "mail.json"))
"""

# Each instance writes its start and end (its key, its worker's pid, the time) and sleeps
# between the two; the instances of one run and of several runs compete for the queue.
# A script's parent is its launcher (durable/dag/_launcher.py), whose parent is the worker.
SEND = (
    "W=$(cut -d' ' -f4 /proc/$PPID/stat); "
    'echo "start $KEY $W $(date +%s.%N)" >> "$QUEUE_EFFECTS"; sleep {sleep}; '
    'echo "end $KEY $W $(date +%s.%N)" >> "$QUEUE_EFFECTS"; echo "sent $KEY"'
)

YAML = """
name: mail
queues:
  emails: {{concurrency: 1}}
tasks:
  prep: {{script: "echo ready"}}
  send:
    depends_on: prep
    queue: emails
    matrix: {{n: [1, 2, 3]}}
    environment: {{KEY: "{{{{ input.k }}}}-{{{{ matrix.n }}}}"}}
    script: "{send}"
  done:
    depends_on: send
    script: "echo done"
"""

JSON = """
{{
  "id": "mailjson",
  "queues": {{"emails": {{"concurrency": 1}}}},
  "steps": [
    {{"id": "prep", "script": "echo ready"}},
    {{"id": "send", "dependencies": ["prep"], "queue": "emails",
     "matrix": {{"n": [1, 2]}},
     "environment": {{"KEY": "{{{{ input.k }}}}-{{{{ matrix.n }}}}"}},
     "script": "{send}"}}
  ]
}}
"""
YAML_RUNS, JSON_RUNS = 3, 2
INSTANCES = YAML_RUNS * 3 + JSON_RUNS * 2


def write(tmp_path: Path, sleep: float) -> Env:
    env = Env(tmp_path, WORKFLOWS)
    send = SEND.format(sleep=sleep).replace('"', '\\"')  # in a double-quoted string
    (tmp_path / "mail.yaml").write_text(YAML.format(send=send))
    (tmp_path / "mail.json").write_text(JSON.format(send=send))
    return env


def intervals(effects: Path, killed_at: float | None = None) -> list[tuple[float, float]]:
    """Each attempt's (start, end), from the steps' own lines; an attempt whose process was
    killed (a start with no end) ends at the kill."""
    starts: dict[str, list[float]] = {}
    spans = []
    for kind, key, _pid, at in (line.split() for line in effects.read_text().splitlines()):
        if kind == "start":
            starts.setdefault(key, []).append(float(at))
        else:
            spans.append((starts[key].pop(0), float(at)))
    for key, left in starts.items():
        if left:
            assert killed_at is not None, f"{key} started and never ended"
            spans.extend((t, max(t, killed_at)) for t in left)
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


async def start_runs(url: str) -> list[str]:
    workers_app: App = importlib.import_module("wfmod").app
    app = App(url, worker=False)
    app.registry._workflows.update(workers_app.registry._workflows)
    app.registry.queues.update(workers_app.registry.queues)  # declared when it opens
    ids = []
    async with app:
        for i in range(YAML_RUNS):
            ids.append((await app.start("mail", {"k": f"y{i}"}, run_id=f"y{i}")).run_id)
        for i in range(JSON_RUNS):
            ids.append((await app.start("mailjson", {"k": f"j{i}"}, run_id=f"j{i}")).run_id)
    return ids


async def sample_until_done(url: str, parents: list[str], samples: list[int]) -> dict[str, str]:
    """Sample the queue's running count until every parent run ended; every run's status."""
    async with App(url, worker=False) as app:
        deadline = time.time() + 120
        while time.time() < deadline:
            info = await app.queue_info("emails")
            samples.append(info.running)
            runs = {r.run_id: r.status for r in await app.list_runs(limit=100)}
            if all(runs.get(p) not in (None, "pending", "running") for p in parents):
                return runs
            await asyncio.sleep(0.05)
        return {r.run_id: r.status for r in await app.list_runs(limit=100)}


def check_runs(env: Env, parents: list[str], runs: dict[str, str]) -> None:
    assert [runs[p] for p in parents] == ["succeeded"] * len(parents), runs
    children = sorted(r for r in runs if r not in parents)
    # One child run per instance, named by its parent and position: none started twice.
    assert len(children) == INSTANCES, children
    assert all(runs[c] == "succeeded" for c in children), runs
    assert all(c.rsplit(".", 1)[0] in parents for c in children), children
    for parent in parents:
        events = env.events(parent)
        started = [e for e in events if e["type"] == "ChildStarted"]
        assert len(started) == (3 if parent.startswith("y") else 2), events
        assert len({e["fields"]["pos"] for e in started}) == len(started)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_queued_dag_step_never_overlaps_across_runs_and_workers(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = write(tmp_path, sleep=0.3)
    if backend == "postgres":
        env.db = request.getfixturevalue("pg_fresh_url")
    effects = tmp_path / "effects.txt"
    effects.touch()
    os.environ["QUEUE_EFFECTS"] = str(effects)
    sys.path.insert(0, str(tmp_path))
    samples: list[int] = []
    try:
        workers = [env.spawn("") for _ in range(3)]
        try:
            parents = asyncio.run(start_runs(env.db))
            runs = asyncio.run(sample_until_done(env.db, parents, samples))
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(timeout=30)
        check_runs(env, parents, runs)
    finally:
        del os.environ["QUEUE_EFFECTS"]
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)
    spans = intervals(effects)
    assert len(spans) == INSTANCES
    assert most_at_once(spans) == 1, sorted(spans)
    assert max(samples) <= 1, samples
    # Without the queue, the runs' instances would run side by side: five runs at once on
    # three workers (checked by breaking the queue: most_at_once was 9).
    # (Which workers ran them is not asserted: a worker whose queued run ends admits the next
    # at once, so one worker may well run every instance while the other two claim in vain.)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_worker_mid_instance_keeps_the_queue_limit_and_the_child(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = write(tmp_path, sleep=1.0)
    if backend == "postgres":
        env.db = request.getfixturevalue("pg_fresh_url")
    effects = tmp_path / "effects.txt"
    effects.touch()
    os.environ["QUEUE_EFFECTS"] = str(effects)
    sys.path.insert(0, str(tmp_path))
    samples: list[int] = []
    killed_at = None
    try:
        workers = {str(p.pid): p for p in (env.spawn("") for _ in range(3))}
        try:
            parents = asyncio.run(start_runs(env.db))

            def running_pid() -> str | None:
                lines = [x.split() for x in effects.read_text().splitlines()]
                started = {(k, p) for kind, k, p, _ in lines if kind == "start"}
                ended = {(k, p) for kind, k, p, _ in lines if kind == "end"}
                found = [p for k, p in started - ended if p in workers]
                return found[0] if len(lines) >= 4 and found else None

            until(lambda: running_pid() is not None, 60, "an instance in progress")
            victim = workers.pop(str(running_pid()))
            victim.send_signal(signal.SIGKILL)
            killed_at = time.time()
            victim.wait(timeout=10)
            runs = asyncio.run(sample_until_done(env.db, parents, samples))
        finally:
            for proc in workers.values():
                proc.send_signal(signal.SIGTERM)
            for proc in workers.values():
                proc.wait(timeout=30)
        check_runs(env, parents, runs)
    finally:
        del os.environ["QUEUE_EFFECTS"]
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)
    spans = intervals(effects, killed_at)
    assert len(spans) >= INSTANCES + 1, "the killed instance ran again elsewhere"
    assert most_at_once(spans) == 1, sorted(spans)
    assert max(samples) <= 1, samples
