"""A run is parked only when nothing but durable waits can move it. Work the log knows nothing
of (a thread, a socket, an asyncio.Event another task sets) in a task raced by ctx.wait, or in
the workflow's own task while another task waits durably, keeps the run in memory: parking it
would throw that work away and leave the run asleep until its timer (found by the agent
workflow builder: an agent step with a one-hour timeout hung for the hour). Real SQLite files,
real apps, park_after=0 (park as soon as a run only waits)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05, park_after=0.0)


def slow_io(seconds: float) -> str:
    time.sleep(seconds)  # a blocking call, as a library would make it (run in a thread)
    return threading.current_thread().name


async def test_a_task_raced_with_a_long_timeout_working_in_a_thread_is_not_parked(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def racing(ctx: Context) -> str:
        work = asyncio.ensure_future(asyncio.to_thread(slow_io, 0.5))
        done, _ = await ctx.wait([work], timeout=3600)
        return "finished" if work in done else "timed out"

    async with app:
        started = time.monotonic()
        handle = await app.start(racing)
        assert await handle.result(timeout=20) == "finished"
        assert time.monotonic() - started < 15


async def test_the_workflow_task_in_a_thread_beside_a_durable_timer_is_not_parked(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def beside(ctx: Context) -> str:
        timer = asyncio.ensure_future(ctx.sleep(3600))
        try:
            return await asyncio.to_thread(slow_io, 0.5)
        finally:
            timer.cancel()

    async with app:
        handle = await app.start(beside)
        name = await handle.result(timeout=20)
        assert name != threading.current_thread().name


async def test_a_run_whose_raced_tasks_only_wait_durably_is_still_parked(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def sleepy(ctx: Context) -> str:
        naps = [asyncio.ensure_future(ctx.sleep(1.0)), asyncio.ensure_future(ctx.sleep(30))]
        done, pending = await ctx.wait(naps, timeout=60)
        for nap in pending:
            nap.cancel()
        return f"{len(done)} done"

    async with app:
        handle = await app.start(sleepy)
        parked = False  # parked: the run is running but no worker holds its lease
        for _ in range(80):
            info = await app.get_run(handle.run_id)
            if info.status == "running" and info.owner is None:
                parked = True
                break
            await asyncio.sleep(0.01)
        assert parked
        assert await handle.result(timeout=20) == "1 done"
