"""Delayed starts with worker processes (SQLite, PostgreSQL): a delayed run never starts before
its time, and survives every worker being SIGKILLed: one killed mid-step and one still waiting
for its time both run to the end on new workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from procenv import until
from qprocs import Workload, url_for, wait_all_ended, workload

from storage import open_store

DELAYS = {"soon": 1.0, "later": 6.0}


async def start(work: Workload) -> None:
    async with work.app() as app:
        for name, delay in DELAYS.items():
            await app.start("job", name, queue="later", delay=delay, run_id=name)


async def created(url: str) -> dict[str, float]:
    store = open_store(url)
    await store.open()
    try:
        found = {name: await store.get_run(name) for name in DELAYS}
        return {name: run.created_at for name, run in found.items() if run is not None}
    finally:
        await store.close()


async def finish(work: Workload) -> list[str]:
    async with work.app() as app:
        return await wait_all_ended(app, "job", len(DELAYS), timeout=60)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_delayed_runs_start_on_time_and_survive_every_worker_killed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    environ = {"STEP_SECONDS": "1.5", "LEASE_TTL": "2"}
    with workload(tmp_path, 'app.queue("later")', url, **environ) as work:
        first = work.spawn(2, ready=True)  # the delays count from here, whatever the load
        asyncio.run(start(work))
        until(lambda: bool(work.in_progress()), 60, "the first delayed run mid-step")
        for proc in first:
            work.kill(proc)
        assert work.first_start("later") is None, "the kill came after 'later' was due"
        work.spawn(2)
        assert asyncio.run(finish(work)) == ["succeeded"] * len(DELAYS)
        born = asyncio.run(created(url))
        steps = work.steps()
    killed = {str(p.pid) for p in first}
    for name, delay in DELAYS.items():
        starts = [s for s in steps if s.n == name and s.kind == "start"]
        early = starts[0].at - (born[name] + delay)
        print(f"\n{backend}: {name} (delay {delay}s) first started {early:+.3f}s from its time")
        assert early >= 0, f"{name} started {-early:.3f}s before its time"
    # "soon" was caught mid-step by the kill and run again by a new worker; "later" ran once,
    # on a new worker.
    soon = [s.pid for s in steps if s.n == "soon" and s.kind == "start"]
    assert soon[0] in killed and soon[-1] not in killed
    later = [s.pid for s in steps if s.n == "later" and s.kind == "start"]
    assert len(later) == 1 and later[0] not in killed
