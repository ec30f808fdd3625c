"""Races between durable waits (issue 14, section 1): a run whose workflow can make progress is
never parked, and a parked run always has something that wakes it. Real SQLite files, real
apps; every wait is bounded so that a hang fails the test instead of blocking it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from durable._executor import RunExecutor
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path, **kw: Any) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05, park_after=0.0, **kw)


def define(app: App) -> Any:
    @app.workflow()
    async def either(ctx: Context) -> str:
        a = asyncio.ensure_future(ctx.wait_for_signal("a"))
        b = asyncio.ensure_future(ctx.wait_for_signal("b"))
        done, _ = await ctx.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        return "a" if a in done else "b"

    return either


async def test_first_of_two_signals_finishes_the_run(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    either = define(app)
    async with app:
        handle = await app.start(either, run_id="r1")
        await asyncio.sleep(0.3)
        await app.signal("r1", "a", 1)
        assert await handle.result(10) == "a"


async def test_first_of_two_signals_finishes_the_run_after_reopening(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    define(app)
    async with app:
        await app.start("either", run_id="r1")
        await asyncio.sleep(0.3)
        await app.signal("r1", "a", 1)
        await asyncio.sleep(0.3)
    app2 = make_app(tmp_path)
    define(app2)
    async with app2:
        assert await app2.handle("r1").result(10) == "a"


async def _run_race(tmp_path: Path, other: str, *, reopen: bool) -> tuple[str, float]:
    """A signal raced against `other` (a step, a child run, a long timer). The signal is sent;
    the run must end at once (not when the timer is due), with or without reopening the app."""

    def build(app: App) -> None:
        @app.step()
        async def slow() -> str:
            await asyncio.sleep(30)
            return "step"

        @app.workflow()
        async def kid(ctx: Context) -> str:
            await ctx.wait_for_signal("never")
            return "child"

        @app.workflow()
        async def racer(ctx: Context, what: str) -> str:
            sig = asyncio.ensure_future(ctx.wait_for_signal("go"))
            if what == "step":
                rival: Any = asyncio.ensure_future(slow())
            elif what == "child":
                rival = asyncio.ensure_future(ctx.run_child(kid))
            else:
                rival = asyncio.ensure_future(ctx.sleep(60))
            done, _ = await ctx.wait([sig, rival], return_when=asyncio.FIRST_COMPLETED)
            return "signal" if sig in done else "other"

    app = make_app(tmp_path)
    build(app)
    loop = asyncio.get_running_loop()
    async with app:
        handle = await app.start("racer", other, run_id="r1")
        await asyncio.sleep(0.3)
        began = loop.time()
        await app.signal("r1", "go", 1)
        if not reopen:
            return await handle.result(10), loop.time() - began
        await asyncio.sleep(0.3)
    app2 = make_app(tmp_path)
    build(app2)
    async with app2:
        return await app2.handle("r1").result(10), loop.time() - began


@pytest.mark.parametrize("other", ["step", "child", "timer"])
@pytest.mark.parametrize("reopen", [False, True])
async def test_a_signal_raced_against_another_wait_wins_at_once(
    tmp_path: Path, other: str, reopen: bool
) -> None:
    result, took = await _run_race(tmp_path, other, reopen=reopen)
    assert result == "signal"
    assert took < 8  # not when the 60 s timer is due, nor the 30 s step


async def test_the_worker_refuses_to_park_a_run_nothing_would_wake(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The invariant checked before parking: a run awaiting no durable wait (here an
    asyncio.Event) would never be woken once parked. Asked to park it, the worker logs an
    ERROR naming the run and what it found, and keeps executing it."""
    app = make_app(tmp_path)
    gate = asyncio.Event()

    @app.workflow()
    async def gated(ctx: Context) -> str:
        await gate.wait()
        return "through"

    async with app:
        handle = await app.start(gated, run_id="g1")
        worker = app.engine.worker
        assert worker is not None
        for _ in range(100):
            if "g1" in worker.executors:
                break
            await asyncio.sleep(0.02)
        executor = worker.executors["g1"]
        assert isinstance(executor, RunExecutor)
        await asyncio.sleep(0.1)
        assert executor.park_problem() == "it awaits no durable wait"
        with caplog.at_level("ERROR", logger="durable.worker"):
            worker._idle_run(executor)
        assert "g1" not in worker._parked
        assert any(
            r.levelname == "ERROR"
            and "g1" in r.getMessage()
            and "no durable wait" in r.getMessage()
            for r in caplog.records
        )
        gate.set()
        assert await handle.result(10) == "through"
