"""Scale-out on PostgreSQL (issue 6): two `durable serve --no-worker` API processes and two
`durable worker` processes, all real subprocesses on one database. What one API process
registers or starts, the other sees and controls (cancel, signal); the runs are executed by
the workers, each step once, and by both of them."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from serving import serve, server_env, wait_status

EFFECTS_ENV = "SCALE_EFFECTS"

# Every step appends "run_id label pid" when it begins (one O_APPEND write: lines of concurrent
# processes never interleave) and returns the pid: which process ran it.
APP = textwrap.dedent(
    f"""
    import asyncio
    import os

    from sdk import App, Context

    app = App("sqlite:///unused.db")

    @app.step()
    async def work(run_id: str, label: str) -> int:
        line = f"{{run_id}} {{label}} {{os.getpid()}}\\n".encode()
        fd = os.open(os.environ["{EFFECTS_ENV}"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        await asyncio.sleep(0.2)
        return os.getpid()

    @app.workflow(name="batch")
    async def batch(ctx: Context, request: dict) -> dict:
        return {{"n": request["n"], "pid": await work(ctx.run_id, "batch")}}

    @app.workflow(name="approval")
    async def approval(ctx: Context, request: dict) -> dict:
        await work(ctx.run_id, "before")
        decision = await ctx.wait_for_signal("decide")
        await work(ctx.run_id, "after")
        return {{"request": request, "decision": decision}}
    """
)

# Registered through one API process only: a first step, then a wait far beyond the test.
HELD = {
    "id": "held",
    "steps": [
        {"id": "first", "action": "transform", "params": {"code": "return 7"}},
        {
            "id": "hold",
            "action": "delay",
            "params": {"duration": 600_000},
            "dependencies": ["first"],
        },
    ],
}


class Effect(NamedTuple):
    run_id: str
    label: str
    pid: int


def read_effects(path: Path) -> list[Effect]:
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # skip a line still being written
    return [Effect(r, label, int(pid)) for r, label, pid in (line.split() for line in lines)]


class WorkerProcess(NamedTuple):
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@contextmanager
def workers(
    workdir: Path, app: str, db: str, count: int, env: Mapping[str, str]
) -> Iterator[list[WorkerProcess]]:
    """`count` `durable worker` processes, started together (so each is up before the other
    can drain the queue alone), yielded once all have said they run; SIGTERM afterwards."""
    procs: list[WorkerProcess] = []
    try:
        for i in range(count):
            log = workdir / f"worker-{i}.log"
            with log.open("wb") as sink:
                command = [sys.executable, "-m", "durable", "worker", app, "--db", db]
                process = subprocess.Popen(
                    # Two runs at a time, so a backlog is shared rather than claimed by one.
                    # The default poll (5 s): a worker whose slots were all taken must be
                    # woken by a run finishing (or the DAG run parking for its long delay),
                    # and new runs reach it through NOTIFY.
                    [*command, "--max-concurrent-runs", "2"],
                    cwd=workdir,
                    env=server_env(workdir, env),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=sink,
                )
            procs.append(WorkerProcess(process, log))
        deadline = time.monotonic() + 30
        for w in procs:
            while "durable worker" not in w.log.read_text(errors="replace"):
                if w.process.poll() is not None:
                    pytest.fail(f"durable worker exited {w.process.returncode}:\n{w.output()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"durable worker did not start in 30 s:\n{w.output()}")
                time.sleep(0.05)
        yield procs
    finally:
        for w in procs:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        for w in procs:
            try:
                w.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait(timeout=10)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def event_types(api: httpx.Client, run_id: str) -> list[str]:
    response = api.get(f"/executions/{run_id}/events")
    assert response.status_code == 200, response.text
    return [e["type"] for e in response.json()["events"]]


def is_waiting(api: httpx.Client, run_id: str) -> bool:
    return "WaitStarted" in event_types(api, run_id)


def listed(api: httpx.Client, **params: str) -> dict[str, str]:
    response = api.get("/executions", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return {e["executionId"]: e["status"] for e in response.json()["executions"]}


def test_two_api_processes_and_two_workers_share_one_database(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    (tmp_path / "scaleapp.py").write_text(APP)
    effects = tmp_path / "effects"
    env = {EFFECTS_ENV: str(effects)}
    app = "scaleapp:app"
    with ExitStack() as stack:
        server_a = stack.enter_context(
            serve(tmp_path, "--no-worker", "--app", app, db=pg_fresh_url, env=env, name="api-a")
        )
        server_b = stack.enter_context(
            serve(tmp_path, "--no-worker", "--app", app, db=pg_fresh_url, env=env, name="api-b")
        )
        a = stack.enter_context(server_a.client())
        b = stack.enter_context(server_b.client())

        # 1. A definition registered through A only is startable through B at once.
        assert a.post("/workflows", json=HELD).status_code == 201
        started = b.post("/executions/start", json={"workflowId": "held", "executionId": "d-1"})
        assert started.status_code == 201, started.text
        kinds = {w["id"]: w["kind"] for w in b.get("/workflows").json()["workflows"]}
        assert kinds["held"] == "dag", kinds

        # 2. Runs started through either process are listed by both, and (no worker yet, the
        # API processes execute nothing) stay pending.
        for run_id in ("sig-1", "cancel-1"):
            body = {"workflowId": "approval", "context": {"id": run_id}, "executionId": run_id}
            assert a.post("/executions/start", json=body).status_code == 201
        batch = [f"b-{i}" for i in range(8)]
        for i, run_id in enumerate(batch):
            body = {"workflowId": "batch", "context": {"n": i}, "executionId": run_id}
            assert (a if i % 2 else b).post("/executions/start", json=body).status_code == 201
        everything = {"d-1", "sig-1", "cancel-1", *batch}
        assert listed(a) == listed(b) == dict.fromkeys(everything, "pending")
        assert set(listed(b, workflowId="batch")) == set(batch)
        time.sleep(0.5)
        assert set(listed(a, status="pending")) == everything
        assert not effects.exists(), "a step ran in an API process"
        seen_by_b = b.get("/executions/sig-1").json()
        assert seen_by_b["workflowId"] == "approval" and seen_by_b["context"] == {"id": "sig-1"}

        pool = stack.enter_context(workers(tmp_path, app, pg_fresh_url, 2, env))
        worker_pids = {w.process.pid for w in pool}

        # 3. The workers execute them: every batch run succeeds, each step once, and both
        # workers took a share. Each is checked through the API it was not started through.
        for i, run_id in enumerate(batch):
            done = wait_status(b if i % 2 else a, run_id, {"succeeded", "failed", "cancelled"})
            assert done["status"] == "succeeded", done
            assert done["stepResults"]["0:work"]["result"] in worker_pids, done
            assert event_types(b if i % 2 else a, run_id)[-1] == "RunCompleted"

        # The DAG run started through B ran its first step on a worker and now waits.
        def held_first_step() -> bool:
            return "first" in a.get("/executions/d-1").json()["completedSteps"]

        wait_for("d-1's first step", held_first_step)
        held = a.get("/executions/d-1").json()
        assert held["status"] in ("pending", "running") and held["context"]["first"] == 7, held

        # 4. Cancel through one process what the other started; the other sees it end.
        for run_id in ("sig-1", "cancel-1"):
            wait_for(f"{run_id} to wait", functools.partial(is_waiting, b, run_id))
        assert b.post("/executions/cancel-1/cancel", json={"reason": "via B"}).status_code == 202
        assert wait_status(a, "cancel-1", {"cancelled", "succeeded"})["status"] == "cancelled"
        again = b.post("/executions/cancel-1/cancel")
        assert again.status_code == 409, again.text
        assert a.post("/executions/cancel-1/cancel").status_code == 409
        assert a.post("/executions/d-1/cancel").status_code == 202
        assert wait_status(b, "d-1", {"cancelled", "succeeded"})["status"] == "cancelled"
        assert b.post("/executions/d-1/cancel").status_code == 409

        # 5. A signal sent through B completes the run started through A.
        assert b.post("/executions/sig-1/signals/decide", json="approved").status_code == 202
        finished = wait_status(a, "sig-1", {"succeeded", "failed", "cancelled"})
        assert finished["status"] == "succeeded", finished
        events = a.get("/executions/sig-1/events").json()["events"]
        assert "SignalReceived" in [e["type"] for e in events], events
        assert events[-1]["type"] == "RunCompleted", events
        outcome = {"request": {"id": "sig-1"}, "decision": "approved"}
        assert events[-1]["fields"]["result"] == outcome, events[-1]
        results = [step["result"] for step in finished["stepResults"].values()]
        assert len(results) == 2 and set(results) <= worker_pids, finished
        assert finished["context"]["id"] == "sig-1", finished

        final = dict.fromkeys(batch, "succeeded") | {
            "sig-1": "succeeded",
            "cancel-1": "cancelled",
            "d-1": "cancelled",
        }
        assert listed(a) == listed(b) == final
        for w in pool:
            assert w.process.poll() is None, w.output()

    lines = read_effects(effects)
    per_step = Counter((e.run_id, e.label) for e in lines)
    expected = {(r, "batch") for r in batch} | {
        ("sig-1", "before"),
        ("sig-1", "after"),
        ("cancel-1", "before"),
    }
    assert set(per_step) == expected
    assert set(per_step.values()) == {1}, f"a step ran more than once: {per_step}"
    by_pid = Counter(e.pid for e in lines)
    assert set(by_pid) == worker_pids, f"steps per process: {by_pid}, workers: {worker_pids}"
