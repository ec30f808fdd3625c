"""ctx.continue_as_new() across processes: an entity fed signals by another process while the
worker executing it is SIGKILLed (once right after a continuation) counts every signal exactly
once, on SQLite and PostgreSQL, and its log stays bounded."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from procenv import Env

from durable import decode_record
from durable._events import RunStarted
from sdk import App

WORKFLOWS = """
from sdk import App, Context

app = App(poll_interval=0.2, lease_ttl=2.0)


@app.step()
async def record(total: int) -> int:
    return total


@app.workflow
async def counter(ctx: Context, state: dict) -> int:
    total = state["total"]
    for _ in range(4):
        value = await ctx.wait_for_signal("add")
        if value == "stop":
            return total
        total = await record(total + value)
    ctx.continue_as_new({"total": total})
"""


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    environment = Env(tmp_path, WORKFLOWS)
    if request.param == "postgres":
        environment.db = request.getfixturevalue("pg_fresh_url")
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop("wfmod", None)
    try:
        yield environment
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wfmod", None)


def starter_app(env: Env) -> App:
    app = App(env.db, worker=False)
    app.registry._workflows.update(importlib.import_module("wfmod").app.registry._workflows)
    return app


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


async def test_signals_across_a_sigkill_after_a_continuation_count_once(env: Env) -> None:
    workers = [env.spawn("")]
    try:
        async with starter_app(env) as app:
            handle = await app.start("counter", {"total": 0}, run_id="entity")
            sent = 0
            for n in range(1, 11):  # 10 signals: at least two continuations
                await app.signal("entity", "add", n)
                sent += n

            async def generation() -> int:
                return (await app.get_run("entity")).generation

            for _ in range(600):  # the worker continues the run twice (4 signals each)
                if await generation() >= 2:
                    break
                await asyncio.sleep(0.05)
            assert await generation() >= 2
            kill(workers[0])
            for n in range(11, 21):  # sent while no worker runs: they wait in the inbox
                await app.signal("entity", "add", n)
                sent += n
            workers.append(env.spawn(""))
            await app.signal("entity", "add", "stop")
            assert await handle.result(timeout=90) == sent == sum(range(1, 21))
            chain = await app.histories("entity")
            records = await app.engine.store.read_events("entity")
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)
    # 20 signals, 4 per history: generations 0..5, each starting where the one before ended.
    assert [h.generation for h in chain] == list(range(6))
    for before, after in itertools.pairwise(chain):
        assert before.last_seq is not None and after.first_seq == before.last_seq + 1
    # Kept: the current history and the one before, seqs without a gap.
    assert records[0].seq == chain[-2].first_seq
    assert [r.seq for r in records] == list(range(records[0].seq, records[-1].seq + 1))
    starts = [decode_record(r) for r in records if r.type == "RunStarted"]
    assert all(isinstance(s.event, RunStarted) for s in starts) and len(starts) == 2

    # The CLI shows the chain, and the run's page says which history it is in.
    listed = env.cli("runs", "histories", "entity", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [h["generation"] for h in json.loads(listed.stdout)] == list(range(6))
    shown = env.cli("runs", "show", "entity")
    assert "generation 5 (continued as new 5 times)" in shown.stdout, shown.stdout
