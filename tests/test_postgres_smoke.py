"""The engine end to end on PostgreSQL, through the public SDK and the CLI: what the SQLite
tests show in depth, checked once on the shared database (each test in a schema of its own)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from pgserver import PgSession

from durable import RunFailed
from durable import events as ev
from sdk import App, Context, RetryPolicy

ROOT = Path(__file__).resolve().parent.parent


def build(
    url: str,
    calls: Counter[str],
    gate: asyncio.Event | None = None,
    *,
    worker: bool = True,
    poll: float = 0.05,
) -> App:
    app = App(url, poll_interval=poll, lease_ttl=5.0, worker=worker)

    @app.step(retry=RetryPolicy(max_attempts=3, initial_delay=0.05))
    async def flaky(name: str) -> str:
        calls[name] += 1
        if calls[name] < 3:
            raise ConnectionError(f"{name}: try {calls[name]}")
        return name.upper()

    @app.step()
    async def step(name: str) -> str:
        calls[name] += 1
        if name == "c" and gate is not None:
            await gate.wait()  # this process never finishes "c"
        return name.upper()

    @app.workflow()
    async def abc(ctx: Context, tag: str) -> str:
        a, b = await asyncio.gather(step("a"), step("b"))
        c = await step("c")
        return f"{tag}:{a}{b}{c}"

    @app.workflow()
    async def retried(ctx: Context) -> list[str]:
        return list(await asyncio.gather(flaky("x"), step("y")))

    return app


async def test_retries_and_gather_on_postgres(pg_fresh_url: str) -> None:
    calls: Counter[str] = Counter()
    app = build(pg_fresh_url, calls)
    async with app:
        assert await app.run("retried", run_id="r", timeout=20) == ["X", "Y"]
        info = await app.get_run("r")
        events = await app.events("r")
    assert calls == Counter({"x": 3, "y": 1})
    assert info.status == "succeeded"
    assert [(s.name, s.status, s.attempts) for s in info.steps] == [
        ("flaky", "succeeded", 3),
        ("step", "succeeded", 1),
    ]
    failed = [e.event for e in events if isinstance(e.event, ev.StepFailed)]
    assert [f.error.type for f in failed] == ["ConnectionError", "ConnectionError"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_a_restarted_process_resumes_without_rerunning_recorded_steps(
    pg_fresh_url: str,
) -> None:
    calls: Counter[str] = Counter()
    first = build(pg_fresh_url, calls, gate=asyncio.Event())
    async with first:
        for i in range(4):
            await first.start("abc", f"t{i}", run_id=f"run-{i}")
        while calls["c"] < 4:  # noqa: ASYNC110  (a counter, polled; no event to wait on)
            await asyncio.sleep(0.01)
    second = build(pg_fresh_url, calls)
    async with second:
        results = [await second.handle(f"run-{i}").result(timeout=20) for i in range(4)]
    assert results == [f"t{i}:ABC" for i in range(4)]
    assert calls == Counter({"a": 4, "b": 4, "c": 8})  # only the step in flight ran again


async def test_two_workers_on_one_database_run_each_run_once(pg_fresh_url: str) -> None:
    calls: Counter[str] = Counter()
    client = build(pg_fresh_url, calls, worker=False)  # starts runs, executes none
    workers = [build(pg_fresh_url, calls), build(pg_fresh_url, calls)]
    async with workers[0], workers[1], client:
        for i in range(30):
            await client.start("abc", f"t{i}", run_id=f"r{i}")
        results = [await client.handle(f"r{i}").result(timeout=30) for i in range(30)]
        stats = [w.engine.worker.stale_writes for w in workers if w.engine.worker]
    assert results == [f"t{i}:ABC" for i in range(30)]
    assert calls == Counter({"a": 30, "b": 30, "c": 30})  # no run executed twice
    assert stats == [0, 0]


async def test_an_idle_worker_is_woken_by_notify_not_by_its_poll(pg_fresh_url: str) -> None:
    calls: Counter[str] = Counter()
    client = build(pg_fresh_url, calls, worker=False)
    worker = build(pg_fresh_url, calls, poll=60.0)  # the poll alone would take a minute
    loop = asyncio.get_running_loop()
    async with worker, client:
        await asyncio.sleep(0.3)  # its first claim found nothing: the worker is idle now
        started = loop.time()
        for i in range(3):
            await client.start("abc", f"n{i}", run_id=f"n{i}")
            assert await client.handle(f"n{i}").result(timeout=20) == f"n{i}:ABC"
            await asyncio.sleep(0.1)  # idle again before the next one
    assert loop.time() - started < 10


async def test_retry_and_fork_from_a_client_reach_an_idle_worker(pg_fresh_url: str) -> None:
    """A client with no worker retries a failed run and forks a finished one; the idle worker
    (whose poll would take a minute) is woken by NOTIFY and executes both, running again only
    the failed step and what follows the fork's position."""
    calls: Counter[str] = Counter()
    broken = {"y"}
    client = build(pg_fresh_url, calls, worker=False)
    worker = build(pg_fresh_url, calls, poll=60.0)
    for app in (client, worker):

        @app.step(retry=RetryPolicy(max_attempts=1))
        async def fragile(name: str) -> str:
            calls[name] += 1
            if name in broken:
                raise ValueError(f"{name} is broken")
            return name.upper()

        @app.workflow()
        async def two(ctx: Context) -> str:
            return await fragile("x") + await fragile("y")

    loop = asyncio.get_running_loop()
    async with worker, client:
        handle = await client.start("two", run_id="t")
        with pytest.raises(RunFailed):
            await handle.result(timeout=20)
        broken.clear()
        await asyncio.sleep(0.3)  # the worker is idle again
        started = loop.time()
        assert await (await client.retry("t")).result(timeout=20) == "XY"
        fork = await client.fork("t", 1)
        assert await fork.result(timeout=20) == "XY"
    assert loop.time() - started < 10
    assert calls == Counter({"x": 1, "y": 3})  # failed, retried, forked


async def test_a_thousand_concurrent_runs_never_exceed_the_pool(pg_fresh_url: str) -> None:
    name = f"smoke_{uuid.uuid4().hex[:8]}"
    app = App(f"{pg_fresh_url}&pool_size=4&application_name={name}", poll_interval=0.2)

    @app.step()
    async def hop(i: int) -> int:
        await asyncio.sleep(0.01)
        return i + 1

    @app.workflow()
    async def two_hops(ctx: Context, i: int) -> int:
        return await hop(await hop(i))

    peak = 0
    done = asyncio.Event()

    async def sample(conn: asyncpg.Connection) -> None:
        nonlocal peak
        while not done.is_set():
            sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
            peak = max(peak, await conn.fetchval(sql, name))
            await asyncio.sleep(0.01)

    admin = await asyncpg.connect(pg_fresh_url.split("?", 1)[0])
    try:
        sampler = asyncio.ensure_future(sample(admin))
        async with app:
            starts = (app.start(two_hops, i, run_id=f"r{i}") for i in range(1000))
            handles = await asyncio.gather(*starts)
            results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
        done.set()
        await sampler
    finally:
        await admin.close()
    assert results == [i + 2 for i in range(1000)]
    assert 1 <= peak <= 4


def test_cli_reads_a_postgres_database(pg_schema_factory: PgSession) -> None:
    url = pg_schema_factory.fresh_url()

    async def make() -> None:
        app = build(url, Counter())
        async with app:
            await app.run("abc", "cli", run_id="from-cli", timeout=20)

    asyncio.run(make())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "durable", "runs", "list", "--db", url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [("from-cli", "succeeded")]
    password = url.split("@", 1)[0].rsplit(":", 1)[-1]
    missing_db = url.split("?", 1)[0].rsplit("/", 1)[0] + "/no_such_db"
    bad = subprocess.run(
        [sys.executable, "-m", "durable", "runs", "list", "--db", missing_db],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert "does not exist" in bad.stderr and password not in bad.stderr
