"""A long DAG run (600 events) whose worker is SIGKILLed after it stored snapshots
resumes from its snapshot in a new worker process and ends as a run that never crashed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from durable._events import decode_record
from durable._state import fold
from storage import open_store

pytestmark = pytest.mark.asyncio

# A StepStarted and a StepCompleted each: 600 events. (Kept short: on SQLite a DAG instance
# costs a commit, which dominates the test's time, not the snapshots.)
INSTANCES = 300

CHILD = """
import asyncio, logging, pathlib, sys
from sdk import App

async def work(params, context):
    return {"double": int(params["n"]) * 2}

FLOW = '''
name: long
tasks:
  first: {code: "return 7;"}
  fan:
    matrix: {n: %s}
    parallelism: 20
    action: work
    params: {n: "{{ matrix.n }}"}
    depends_on: [first]
  last: {code: "return 1;", depends_on: [fan]}
'''

async def main(db: str, run_id: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    app = App(f"sqlite:///{db}", lease_ttl=1.0, poll_interval=0.1, snapshot_every=%d)
    app.register_action("work", work)
    flow = pathlib.Path(db).with_suffix(".yaml")
    flow.write_text(FLOW)
    name = app.register_dag(flow)
    async with app:
        if await app.engine.client.store.get_run(run_id) is None:
            await app.start(name, None, run_id=run_id)
        outcome = await app.engine.client.wait(run_id)
        print(outcome.status, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def child(tmp: Path, db: Path, run_id: str, every: int) -> subprocess.Popen[str]:
    script = tmp / "long_dag.py"
    script.write_text(CHILD % (list(range(INSTANCES)), every))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(script), str(db), run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def snapshot_seq(url: str, run_id: str) -> tuple[int, bool]:
    store = open_store(url)
    await store.open()
    try:
        snap = await store.get_snapshot(run_id)
        run = await store.get_run(run_id)
        return (snap.seq if snap else 0), (
            run is not None and run.status != "running" and run.status != "pending"
        )
    finally:
        await store.close()


async def outcome(url: str, run_id: str) -> tuple[str, dict[str, Any]]:
    store = open_store(url)
    await store.open()
    try:
        state = fold(run_id, [decode_record(r) for r in await store.read_events(run_id)])
    finally:
        await store.close()
    results = {s.name: (s.status, bytes(s.result or b"")) for s in state.steps.values()}
    return state.status, results


async def test_a_killed_long_dag_resumes_from_its_snapshot(tmp_path: Path) -> None:
    crashed, calm = tmp_path / "crashed.db", tmp_path / "calm.db"
    first = child(tmp_path, crashed, "long", 100)
    deadline = time.monotonic() + 120
    while True:  # kill it once it stored a snapshot half-way, before the end
        assert time.monotonic() < deadline, "no snapshot was stored"
        assert first.poll() is None, first.communicate()
        seq, ended = await snapshot_seq(f"sqlite:///{crashed}", "long")
        assert not ended, "the run ended before it could be killed"
        if seq >= 250:
            break
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = child(tmp_path, crashed, "long", 100)
    out, err = await asyncio.to_thread(second.communicate, timeout=180)
    assert second.returncode == 0, err
    assert out.strip() == "succeeded"
    assert "from its snapshot at seq" in err, err[-3000:]
    reference = child(tmp_path, calm, "long", 0)  # no snapshots, no crash
    out, err = await asyncio.to_thread(reference.communicate, timeout=180)
    assert out.strip() == "succeeded", err[-3000:]
    status, results = await outcome(f"sqlite:///{crashed}", "long")
    assert (status, results) == await outcome(f"sqlite:///{calm}", "long")
    assert len(results) == INSTANCES + 2
