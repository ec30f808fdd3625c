"""External waits across processes, on SQLite and PostgreSQL: a `durable worker` subprocess
runs the workflows; completions come from other processes (completer scripts, the CLI) at
the same instant, or racing the wait's timeout, or while the worker is killed: each wait gets
exactly one outcome, and the process that won is the one whose outcome the workflow saw."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from external_procs import WORKFLOWS, Procs, outcomes

from durable._events import ExternalStarted
from sdk import App


@pytest.fixture(params=["sqlite", "postgres"])
def procs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Procs]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_fresh_url")
    else:
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    found = Procs(tmp_path, url)
    try:
        yield found
    finally:
        found.kill_all()


@asynccontextmanager
async def client(procs: Procs) -> AsyncIterator[App]:
    module: dict[str, Any] = {}
    exec(compile(WORKFLOWS, "wfmod.py", "exec"), module)  # the same workflows, to start them
    async with App(procs.url, worker=False) as app:
        app.registry._workflows.update(module["app"].registry._workflows)
        yield app


RUNS = 10


async def test_two_processes_complete_at_once_one_wins(procs: Procs) -> None:
    procs.worker()
    async with client(procs) as app:
        handles = [await app.start("pay", None) for _ in range(RUNS)]
        tokens = procs.tokens_by_run(RUNS)
        start_at = time.time() + 1.5  # both completers are up by then
        first = procs.completer(start_at, "a", list(tokens.values()))
        second = procs.completer(start_at, "b", list(tokens.values()))
        results = {"a": outcomes(first), "b": outcomes(second)}
        for handle in handles:
            mine = {v: next(o for o in results[v] if o["run"] == handle.run_id) for v in "ab"}
            winners = [v for v in "ab" if mine[v]["won"]]
            assert len(winners) == 1, mine
            [loser] = [v for v in "ab" if v not in winners]
            assert "already completed" in mine[loser]["error"], mine[loser]
            outcome = await handle.result(60)
            assert outcome == {"paid": winners[0], "token": tokens[handle.run_id]}
        # The CLI says so too, with a clear message and a failing exit code.
        done = procs.cli("complete", tokens[handles[0].run_id], '"c"')
        assert done.returncode != 0 and "already completed" in done.stderr, done
        bad = procs.cli("complete", "dx1.bogus", "1")
        assert bad.returncode != 0 and "not a completion token" in bad.stderr, bad
        assert "Traceback" not in bad.stderr + done.stderr


async def test_timeout_races_completion_one_outcome(procs: Procs) -> None:
    procs.worker()
    async with client(procs) as app:
        timeout = 2.0
        handles = [await app.start("pay", timeout) for _ in range(6)]
        tokens = procs.tokens_by_run(len(handles))
        events = [await app.events(h.run_id) for h in handles]
        deadlines = {
            h.run_id: next(e.event.deadline for e in evs if isinstance(e.event, ExternalStarted))
            for h, evs in zip(handles, events, strict=True)
        }
        # Completions aimed around each wait's deadline (a little before and after).
        completers = [
            (
                h,
                procs.completer(
                    float(deadlines[h.run_id] or 0.0) + offset, "paid", [tokens[h.run_id]]
                ),
            )
            for h, offset in zip(handles, (-0.3, -0.1, -0.02, 0.0, 0.02, 0.2), strict=True)
        ]
        for handle, completer in completers:
            [said] = outcomes(completer)
            result = await handle.result(60)
            if said["won"]:
                assert result == {"paid": "paid", "token": tokens[handle.run_id]}
            else:
                assert "already timed out" in said["error"], said
                assert result == {"timed_out": True, "token": tokens[handle.run_id]}
            [row] = await app.external_waits(handle.run_id)
            assert row.status == ("completed" if said["won"] else "timed_out")


async def test_kill_after_the_completion_commits_next_worker_delivers(procs: Procs) -> None:
    # Long polls: the worker cannot take the completion into the log before it is killed.
    worker = procs.worker(poll=30, lease_ttl=2)
    async with client(procs) as app:
        handle = await app.start("pay", None)
        token = procs.tokens_by_run(1)[handle.run_id]
        if procs.url.startswith("sqlite"):
            # No notification crosses processes on SQLite and the worker polls its inbox every
            # 30 s: the completion commits while it lives, and it dies without having seen it.
            await app.complete(token, {"ok": 1})
            os.kill(worker.pid, signal.SIGKILL)
        else:
            # On PostgreSQL the commit would wake it at once, so it dies first. (Not stopped
            # with SIGSTOP: a worker stopped in its heartbeat's UPDATE holds the run's row lock,
            # and the completion would wait for it for ever.)
            os.kill(worker.pid, signal.SIGKILL)
            await app.complete(token, {"ok": 1})
        worker.wait(timeout=30)
        assert not [e for e in await app.events(handle.run_id) if e.type == "ExternalCompleted"]
        procs.worker(poll=0.2, lease_ttl=2)
        # The same token after the replay (the nonce is recorded), and the completion delivered.
        assert await handle.result(60) == {"paid": {"ok": 1}, "token": token}
