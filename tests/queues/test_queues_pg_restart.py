"""The admission state survives a PostgreSQL restart in the middle of a queued workload: three
worker processes share a queue of concurrency 3 while the server is stopped (every connection
cut) and started again. Sampled from the database and measured from the steps' own times, never
more than 3 runs at once; every run ends, succeeded, within a bound after the server is back:
nothing over the limit, nothing lost, nothing stuck."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from pgserver import PgSession, restart
from procenv import until
from qprocs import Workload, overlap, wait_all_ended, workload

from sdk import App

RUNS = 15
LIMIT = 3
DOWN = 2.0  # seconds the server stays stopped
BACK_BOUND = 60.0  # seconds after the server is back by which every run has ended


async def start(work: Workload) -> None:
    async with work.app() as app:
        for n in range(RUNS):
            await app.start("job", f"r{n:02}", queue="q", run_id=f"r{n:02}")


def sample(url: str, samples: list[int], errors: list[str], stop: threading.Event) -> None:
    """The queue's running count, every 50 ms, until told to stop (through the restart: a
    failed sample is noted and the next one tried)."""

    async def go() -> None:
        async with App(url, worker=False) as app:
            while not stop.is_set():
                try:
                    samples.append((await app.queue_info("q")).running)
                except Exception as exc:  # the server is down: try again
                    errors.append(type(exc).__name__)
                await asyncio.sleep(0.05)

    asyncio.run(go())


async def finish(work: Workload) -> list[str]:
    async with work.app() as app:
        return await wait_all_ended(app, "job", RUNS, timeout=BACK_BOUND)


def test_a_postgres_restart_neither_overfills_loses_nor_sticks(
    pg_restartable: PgSession, tmp_path: Path
) -> None:
    server = pg_restartable.server
    assert server is not None
    pg_fresh_url = pg_restartable.fresh_url()  # on the server restarted below
    queue = f'app.queue("q", concurrency={LIMIT}, worker_concurrency=2)'
    # A lease longer than the outage: a worker that lives through it keeps its runs.
    environ = {"STEP_SECONDS": "1.0", "LEASE_TTL": "10"}
    with workload(tmp_path, queue, pg_fresh_url, **environ) as work:
        asyncio.run(start(work))
        # Every worker has opened (a worker that starts while the server is down exits with
        # the error: its process supervisor is to start it again; not what this tests).
        work.spawn(3, ready=True)
        samples: list[int] = []
        errors: list[str] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(pg_fresh_url, samples, errors, stop))
        sampler.start()
        try:
            until(lambda: len(work.steps("start")) >= LIMIT, 60, "the queue full")
            until(lambda: bool(samples), 30, "the sampler going")
            cut_at, before = time.time(), len(work.steps("start"))
            restart(server, down=DOWN)
            back_at = time.time()
            statuses = asyncio.run(finish(work))
            done_at = time.time()
        finally:
            stop.set()
            sampler.join(timeout=30)
        alive = [p.poll() is None for p in work.workers]
        steps = work.steps()
    print(
        f"\nserver down {back_at - cut_at:.1f}s with {before} steps started before; every "
        f"run ended {done_at - back_at:.1f}s after it was back; "
        f"{len(samples)} samples (max {max(samples)}), {len(errors)} failed during the outage; "
        f"workers alive: {alive}"
    )
    assert statuses == ["succeeded"] * RUNS
    assert samples and max(samples) <= LIMIT, samples
    assert {s.n for s in steps if s.kind == "end"} == {f"r{n:02}" for n in range(RUNS)}
    # From the steps' own times: a step that never ended (its worker died) counts as open
    # until the end, which can only overstate the overlap.
    ended = {(s.n, s.pid) for s in steps if s.kind == "end"}
    points = [(s.at, 1 if s.kind == "start" else -1) for s in steps]
    points += [(done_at, -1) for s in steps if s.kind == "start" and (s.n, s.pid) not in ended]
    assert overlap(points) <= LIMIT
    assert all(alive), "a worker died of the outage"
