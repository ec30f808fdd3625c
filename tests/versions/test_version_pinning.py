"""Versions across restarts, with real worker processes (`durable worker`) on one SQLite file.

Runs start on v1 and wait for a signal; the v1 worker stops. A worker with only v2 leaves the v1
runs alone (they are listed as waiting for a worker with etl@1) and runs new runs on v2. Then a
worker with v1 and v2 side by side finishes the old runs on v1 and the new one on v2. Signals
sent while no worker ran are delivered when one starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from procenv import Env, until

WORKFLOWS = """
import os
from sdk import App, Context

app = App(os.environ["DURABLE_DATABASE_URL"], poll_interval=0.1, lease_ttl=2.0)
versions = os.environ.get("ETL_VERSIONS", "1").split(",")

if "1" in versions:
    @app.workflow(name="etl", version="1")
    async def etl_v1(ctx: Context, n: int) -> str:
        go = await ctx.wait_for_signal("go")
        return f"v1:{n}:{go}"

if "2" in versions:
    @app.workflow(name="etl", version="2")
    async def etl_v2(ctx: Context, n: int) -> str:
        go = await ctx.wait_for_signal("go")
        return f"v2:{n * 10}:{go}"
"""


def waiting_for_signal(env: Env, run_id: str) -> bool:
    return any(e["type"] == "WaitStarted" for e in env.events(run_id))


@pytest.mark.slow
def test_runs_finish_on_the_version_they_started_on(tmp_path: Path) -> None:
    env = Env(tmp_path, WORKFLOWS)
    with env.worker("1"):
        env.start("1", "old-a=1", "old-b=2")
        until(lambda: all(waiting_for_signal(env, r) for r in ("old-a", "old-b")), why="v1 runs")
    # No worker at all: a signal sent now waits in the run's inbox.
    sent = env.cli("signal", "old-a", "go", "--data", '"early"')
    assert sent.returncode == 0, sent.stderr

    with env.worker("2"):
        env.start("1,2", "new=3")  # the newest version, 2
        until(lambda: waiting_for_signal(env, "new"), why="the v2 run")
        runs = env.runs()
        assert runs["new"]["version"] == "2"
        for old in ("old-a", "old-b"):
            assert runs[old]["version"] == "1" and runs[old]["status"] == "running"
            assert runs[old]["waiting_for"] == "a worker with etl@1"
        assert runs["new"].get("waiting_for") is None
        listed = env.cli("runs", "list")
        assert "waiting for a worker with etl@1" in listed.stdout
        # The v2 worker never touched the v1 runs: their logs end at the wait.
        assert env.events("old-a")[-1]["type"] == "WaitStarted"

    with env.worker("1,2"):
        for run_id in ("old-b", "new"):
            sent = env.cli("signal", run_id, "go", "--data", '"late"')
            assert sent.returncode == 0, sent.stderr

        def finished() -> bool:
            return all(r["status"] == "succeeded" for r in env.runs().values())

        until(finished, why="every run to finish")
    results = {}
    for run_id in ("old-a", "old-b", "new"):
        shown = env.cli("runs", "show", run_id, "--json")
        results[run_id] = json.loads(shown.stdout)["result"]
    assert results == {"old-a": "v1:1:early", "old-b": "v1:2:late", "new": "v2:30:late"}
    received = [e for e in env.events("old-a") if e["type"] == "SignalReceived"]
    assert len(received) == 1
