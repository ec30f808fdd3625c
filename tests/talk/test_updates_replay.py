"""Replays of runs that accepted updates while gathered branches ran: the handler is
relaunched in its recorded turn and takes the position it had live, so the final log replays
deterministically and a run closed mid-way resumes on a new app with the same answers. Real
SQLite files, real apps."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from durable import events as ev
from durable import replay
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def build(app: App, delays: dict[str, float], *, no_handler: bool = False) -> Any:
    @app.step
    async def work(name: str) -> str:
        await asyncio.sleep(delays.get(name, 0.0))
        return name

    @app.workflow
    async def chains(ctx: Context) -> dict[str, Any]:
        seen: list[str] = []

        async def bump(tag: str) -> list[str]:
            first = await work("u" + tag)
            ctx.now()  # a command taken at once after the step's outcome
            second = await work("u" + tag + "2")
            seen.append(tag)
            return [first, second, str(len(seen))]

        if not no_handler:  # a changed version that dropped it: a replay must say so
            ctx.on_update("bump", bump)

        async def chain(name: str) -> list[str]:
            first = await work(name)
            ctx.now()
            second = await work(name + "2")
            return [first, second]

        got = list(await asyncio.gather(chain("a"), chain("b"), chain("c")))
        await ctx.wait_for_signal("done")
        return {"chains": got, "seen": seen}

    return chains


async def accepted(app: App, run_id: str, count: int) -> None:
    for _ in range(500):
        events = await app.events(run_id)
        if sum(isinstance(e.event, ev.UpdateAccepted) for e in events) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} updates not accepted")


async def test_updates_between_gathered_branches_replay_deterministically(
    tmp_path: Path,
) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    chains = build(app, {"a": 0.05, "b": 0.4, "c": 0.2, "ux": 0.1, "uy": 0.02})
    async with app:
        handle = await app.start(chains)
        await asyncio.sleep(0.02)
        x = asyncio.ensure_future(app.update(handle.run_id, "bump", "x", timeout=20))
        await asyncio.sleep(0.1)
        y = asyncio.ensure_future(app.update(handle.run_id, "bump", "y", timeout=20))
        answers = await asyncio.gather(x, y)
        await app.signal(handle.run_id, "done")
        result = await handle.result(timeout=20)
        events = await app.events(handle.run_id)
        report = await replay(handle.run_id, events, app.registry)
    assert sorted(a[0] for a in answers) == ["ux", "uy"]
    assert result["chains"] == [["a", "a2"], ["b", "b2"], ["c", "c2"]]
    assert sorted(result["seen"]) == ["x", "y"]
    positions = [e.event.pos for e in events if isinstance(e.event, ev.UpdateAccepted)]
    assert len(positions) == 2 and min(positions) > 0  # taken between the branches' commands
    assert report.deterministic, report.divergence


async def test_a_run_closed_while_a_handler_runs_resumes_on_a_new_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    app = App(url, poll_interval=0.05)
    build(app, {"a": 0.01, "c": 0.05, "b": 0.1, "ux": 0.02, "ux2": 30})
    async with app:
        await app.start("chains", run_id="r")
        await asyncio.sleep(0.03)
        pending = asyncio.ensure_future(
            app.update("r", "bump", "x", update_id="bump-x", timeout=30)
        )
        for _ in range(500):  # the handler's first step ended, its second runs (30 s)
            kinds = [e.type for e in await app.events("r")]
            if "UpdateAccepted" in kinds and kinds.count("StepCompleted") >= 7:
                break
            await asyncio.sleep(0.02)
        assert kinds.count("StepCompleted") >= 7, kinds
        pending.cancel()  # the caller gives up waiting; the update goes on
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):  # (a slow machine)
            await pending
    again = App(url, poll_interval=0.05)
    build(again, {})
    async with again:
        answer = await again.update("r", "bump", "x", update_id="bump-x", timeout=30)
        await again.signal("r", "done")
        result = await again.handle("r").result(timeout=30)
        events = await again.events("r")
        report = await replay("r", events, again.registry)
    assert answer == ["ux", "ux2", "1"]
    assert result == {"chains": [["a", "a2"], ["b", "b2"], ["c", "c2"]], "seen": ["x"]}
    assert sum(isinstance(e.event, ev.UpdateAccepted) for e in events) == 1
    assert report.deterministic, report.divergence


async def test_code_without_the_handler_of_an_accepted_update_is_a_clear_divergence(
    tmp_path: Path,
) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    build(app, {"b": 0.2})
    async with app:
        handle = await app.start("chains")
        await app.update(handle.run_id, "bump", "x", timeout=20)
        await app.signal(handle.run_id, "done")
        await handle.result(timeout=20)
        events = await app.events(handle.run_id)
    changed = App(f"sqlite:///{tmp_path / 'other.db'}")
    build(changed, {}, no_handler=True)
    report = await replay(handle.run_id, events, changed.registry)
    assert not report.deterministic
    assert report.divergence is not None
    assert report.divergence.recorded == "the acceptance of update 'bump'"
    assert "no handler 'bump' registered" in report.divergence.requested
