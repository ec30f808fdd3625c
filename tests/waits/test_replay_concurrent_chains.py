"""Concurrent tasks each running a step and then another command replay as they ran live.

Live, a step's outcome comes back only after the other ready tasks ran until they blocked
(the step's start has to be committed first), so they take their commands' positions before
the first task goes on. A replay has the outcome at hand; it used to hand it back at once,
and the first task's next command took the position the second task's step had live: a
NonDeterminismError on every recovery of such a run (found by the agent workflow builder's
crash test, whose parallel branches each record a marker after their step). Real SQLite
files, real apps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from durable import replay
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def build(app: App, delays: dict[str, float]) -> Any:
    @app.step
    async def work(name: str) -> str:
        await asyncio.sleep(delays.get(name, 0.0))
        return name

    @app.workflow
    async def chains(ctx: Context) -> list[list[str]]:
        async def chain(name: str) -> list[str]:
            first = await work(name)
            ctx.now()  # a command taken at once, right after the step's outcome
            second = await work(name + "2")
            return [first, second]

        return list(await asyncio.gather(chain("a"), chain("b"), chain("c")))

    return chains


async def test_the_final_log_replays_deterministically(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    chains = build(app, {"a": 0.01, "b": 0.2, "c": 0.1})
    async with app:
        handle = await app.start(chains)
        assert await handle.result(timeout=10) == [["a", "a2"], ["b", "b2"], ["c", "c2"]]
        events = await app.events(handle.run_id)
        report = await replay(handle.run_id, events, app.registry)
    assert report.deterministic, report.divergence


async def test_a_run_closed_mid_way_resumes_on_a_new_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    app = App(url, poll_interval=0.05)
    chains = build(app, {"a": 0.01, "c": 0.05, "b": 30})
    async with app:
        await app.start(chains, run_id="r")
        for _ in range(500):  # a's and c's chains have ended, b's first step still runs
            kinds = [e.type for e in await app.events("r")]
            if kinds.count("StepCompleted") == 4:
                break
            await asyncio.sleep(0.02)
        assert kinds.count("StepCompleted") == 4, kinds
    again = App(url, poll_interval=0.05)
    build(again, {})
    async with again:
        assert await again.handle("r").result(timeout=30) == [
            ["a", "a2"],
            ["b", "b2"],
            ["c", "c2"],
        ]
        report = await replay("r", await again.events("r"), again.registry)
    assert report.deterministic, report.divergence


async def test_a_branch_waiting_early_resumes_after_the_one_before_it_went_on(
    tmp_path: Path,
) -> None:
    """b awaits its first step's outcome from the start; a takes two outcomes, then a command
    and a step, before b's outcome came live. The replay used to release b the moment a took
    the outcome before b's, and b, resuming first, took a's positions (found with updates,
    whose handlers await outcomes while other tasks move on)."""
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    delays = {"a1": 0.01, "a2": 0.01, "b1": 0.3, "a3": 0.6}

    @app.step
    async def work(name: str) -> str:
        await asyncio.sleep(delays.get(name, 0.0))
        return name

    @app.workflow
    async def early(ctx: Context) -> list[Any]:
        async def a() -> list[Any]:
            first, second = await work("a1"), await work("a2")
            at = ctx.now().timestamp()
            return [first, second, await work("a3"), at]

        async def b() -> list[Any]:
            first = await work("b1")
            at = ctx.now().timestamp()
            return [first, await work("b2"), at]

        return list(await asyncio.gather(a(), b()))

    async with app:
        handle = await app.start(early)
        result = await handle.result(timeout=20)
        report = await replay(handle.run_id, await app.events(handle.run_id), app.registry)
    assert [r[:-1] for r in result] == [["a1", "a2", "a3"], ["b1", "b2"]]
    assert report.deterministic, report.divergence
