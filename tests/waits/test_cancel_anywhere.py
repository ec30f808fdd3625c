"""An accepted cancel always ends the run cancelled (issue 14, section 3): also when it arrives
while the workflow awaits something that is not a step or a durable wait, and when the workflow
catches the CancelledError, compensates, and returns normally. Real SQLite files, real apps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)


async def final_status(app: App, run_id: str, within: float = 10) -> str:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        info = await app.get_run(run_id)
        if info.status not in ("pending", "running") or loop.time() > end:
            return info.status
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("what", ["asyncio.sleep", "asyncio.Event"])
async def test_a_cancel_during_a_plain_asyncio_await_ends_the_run_cancelled(
    tmp_path: Path, what: str
) -> None:
    app = make_app(tmp_path)
    reached = asyncio.Event()
    never = asyncio.Event()
    undone: list[str] = []

    @app.step()
    async def undo() -> None:
        undone.append("undo")

    @app.workflow()
    async def plain(ctx: Context) -> str:
        reached.set()
        try:
            if what == "asyncio.sleep":
                await asyncio.sleep(60)  # far past final_status's 10 s: only a cancel ends it
            else:
                await never.wait()
        except asyncio.CancelledError:
            await undo()
            raise
        return "finished"

    async with app:
        handle = await app.start(plain, run_id="p1")
        await asyncio.wait_for(reached.wait(), 10)
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await app.cancel(handle.run_id, "stop")
        status = await final_status(app, handle.run_id)
        took = loop.time() - began
        events = [e.type for e in await app.events(handle.run_id)]
    assert status == "cancelled", events
    assert took < 8  # delivered at once, not when the sleep ends (60 s)
    assert undone == ["undo"]
    assert events[-1] == "RunCancelled"


async def test_a_workflow_that_swallows_the_cancel_still_ends_cancelled(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    reached = asyncio.Event()
    undone: list[str] = []

    @app.step()
    async def undo() -> None:
        undone.append("undo")

    @app.workflow()
    async def swallower(ctx: Context) -> Any:
        reached.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await undo()
            return "pretended to finish"
        return "finished"

    async with app:
        handle = await app.start(swallower, run_id="s1")
        await asyncio.wait_for(reached.wait(), 10)
        await asyncio.sleep(0.1)
        await app.cancel(handle.run_id, "stop")
        status = await final_status(app, handle.run_id)
        events = [e.type for e in await app.events(handle.run_id)]
    assert status == "cancelled", events
    assert undone == ["undo"]
    assert "RunCompleted" not in events


async def test_a_cancel_sent_while_no_worker_runs_is_delivered_at_a_plain_await(
    tmp_path: Path,
) -> None:
    """The cancel arrives while the app is closed; the next app replays the run to its
    asyncio.sleep, and the waiting cancel ends it there (not 30 s later, not succeeded)."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    reached = asyncio.Event()

    def build() -> App:
        app = App(url, poll_interval=0.05, lease_ttl=0.5)

        @app.step()
        async def prepare() -> int:
            return 1

        @app.workflow()
        async def sleeper(ctx: Context) -> str:
            await prepare()
            reached.set()
            await asyncio.sleep(30)
            return "finished"

        return app

    async with build() as first:
        await first.start("sleeper", run_id="c1")
        await asyncio.wait_for(reached.wait(), 10)
    async with App(url, worker=False) as client:
        await client.cancel("c1", "while nobody ran it")
        assert (await client.get_run("c1")).status == "running"
    loop = asyncio.get_running_loop()
    began = loop.time()
    async with build() as second:
        status = await final_status(second, "c1", within=20)
        events = [e.type for e in await second.events("c1")]
    assert status == "cancelled", events
    assert loop.time() - began < 15
    assert events.count("StepCompleted") == 1  # prepare was not run again
    assert events[-1] == "RunCancelled"


async def test_a_cancel_that_meets_a_step_waiting_for_its_start_to_be_durable(
    tmp_path: Path,
) -> None:
    """The step was interrupted (its process stopped mid-attempt), so its next start is made
    durable before the body runs; a cancel waiting in the inbox is delivered during that wait.
    It must end the run cancelled, not make the write look failed (a store future cancelled
    under the writer), which stopped every execution of the run: running forever."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    started = asyncio.Event()
    ran: list[str] = []

    def build() -> App:
        app = App(f"{url}", poll_interval=0.05, lease_ttl=0.5)

        @app.step()
        async def slow() -> str:
            ran.append("slow")
            started.set()
            await asyncio.sleep(3600)
            return "done"

        @app.workflow()
        async def wf(ctx: Context) -> str:
            return await slow()

        return app

    async with build() as first:
        await first.start("wf", run_id="b1")
        await asyncio.wait_for(started.wait(), 10)
    async with App(url, worker=False) as client:
        await client.cancel("b1", "stop")
    async with build() as second:
        status = await final_status(second, "b1", within=10)
        events = [e.type for e in await second.events("b1")]
    assert status == "cancelled", events
    assert events[-1] == "RunCancelled"
