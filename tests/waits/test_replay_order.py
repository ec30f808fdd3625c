"""Gathered chains of commands replay in the order they ran.

A step call takes its position when it is called. With asyncio.gather over chains of several
steps, which chain calls its second step first depends on which first step finished first;
live that is a matter of time, and the log records it. A replay (a recovery, the replay
debugger) must take exactly that path: recorded outcomes are handed back in the order they were
recorded, not all at once, so the chains call their next steps in the order they did live.
Before, a replay gave every recorded outcome at once: the first chain ran to its end before the
second began, took the positions the second had taken live, and got the other chain's results
(same step) or failed with a NonDeterminismError (another step)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from durable._replay import replay
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def build(url: str, gate: asyncio.Event | None = None) -> App:
    app = App(url, poll_interval=0.05, lease_ttl=0.5)

    @app.step()
    async def fetch(tag: str, delay: float) -> str:
        await asyncio.sleep(delay)
        return f"fetched-{tag}"

    @app.step()
    async def store(tag: str, value: str) -> str:
        if tag == "slow" and gate is not None:
            await gate.wait()  # the first app stops here
        return f"stored-{tag}-{value}"

    async def chain(tag: str, delay: float) -> list[str]:
        first = await fetch(tag, delay)
        second = await fetch(f"{tag}-again", 0)  # the same step: a swap would go unnoticed
        third = await store(tag, second)
        return [first, second, third]

    @app.workflow()
    async def fan(ctx: Context) -> list[list[str]]:
        return list(await asyncio.gather(chain("slow", 0.4), chain("quick", 0.0)))

    return app


EXPECTED = [
    ["fetched-slow", "fetched-slow-again", "stored-slow-fetched-slow-again"],
    ["fetched-quick", "fetched-quick-again", "stored-quick-fetched-quick-again"],
]


async def test_a_replay_of_gathered_chains_takes_the_recorded_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    app = build(url)
    async with app:
        assert await app.run("fan", run_id="f1") == EXPECTED
        events = await app.events("f1")
        report = await replay("f1", events, app.registry)
    assert report.deterministic, report.divergence
    assert report.positions_replayed == 6


async def test_a_recovery_in_the_middle_of_gathered_chains_continues_on_the_recorded_path(
    tmp_path: Path,
) -> None:
    """The quick chain ended and the slow one is in its last step when the app stops; the
    next app replays both chains from the log, runs the slow chain's last step again, and the
    result is the one a run without the stop gives."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = build(url, gate=asyncio.Event())
    async with first:
        await first.start("fan", run_id="f2")
        while True:  # until the slow chain is in store(): 5 steps started
            events = await first.events("f2")
            if [e.type for e in events].count("StepStarted") >= 6:
                break
            await asyncio.sleep(0.02)
    async with build(url) as second:
        result = await second.handle("f2").result(timeout=20)
        events = await second.events("f2")
        report = await replay("f2", events, second.registry)
    assert result == EXPECTED
    assert report.deterministic, report.divergence
