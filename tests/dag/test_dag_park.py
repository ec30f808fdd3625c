"""DAG runs that only wait for delays are parked like Python runs that only wait: the worker
gives their lease and slot back, and the store offers them again when the delay ends or
something is sent to them. On real SQLite files."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from durable import events as ev
from durable.dag import parse_definition
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path, **kw: Any) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05, **kw)


def register(app: App, tmp_path: Path, text: str) -> str:
    definition = parse_definition(
        textwrap.dedent(text), str(tmp_path / "wf.yaml"), known_actions=app.registry.actions
    )
    return app.register_dag(definition)


def delaying(ms: int) -> str:
    return f"""
        name: napper
        tasks:
          before: {{script: "echo before"}}
          nap:
            action: delay
            params: {{duration: {ms}}}
            depends_on: [before]
          after: {{script: "echo after", depends_on: [nap]}}
        """


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def parked(app: App, run_id: str) -> bool:
    worker = app.engine.worker
    assert worker is not None
    row = await app.engine.store.get_run(run_id)
    assert row is not None
    return run_id not in worker.executors and row.owner is None


async def nap_events(app: App, run_id: str) -> list[ev.LoggedEvent]:
    events = await app.events(run_id)
    pos = next(
        e.event.pos for e in events if isinstance(e.event, ev.StepStarted) and e.event.name == "nap"
    )
    return [e for e in events if getattr(e.event, "pos", None) == pos]


def started(events: list[ev.LoggedEvent]) -> int:
    return sum(isinstance(e.event, ev.StepStarted) for e in events)


async def test_a_delaying_dag_run_gives_its_slot_back(tmp_path: Path) -> None:
    app = make_app(tmp_path, max_concurrent_runs=1, park_after=0.2)

    @app.workflow()
    async def quick(ctx: Context) -> str:
        return "quick"

    async with app:
        name = register(app, tmp_path, delaying(5000))
        dag = await app.start(name)

        async def napping() -> bool:
            events = await app.events(dag.run_id)
            return any(
                isinstance(e.event, ev.StepStarted) and e.event.name == "nap" for e in events
            )

        await until(napping)
        began = time.monotonic()
        # Without parking it would wait for the only slot until the delay ends (5 s).
        assert await app.run(quick, timeout=20) == "quick"
        assert time.monotonic() - began < 2.5
        assert await parked(app, dag.run_id)
        row = await app.engine.store.get_run(dag.run_id)
        assert row is not None and row.owner is None and row.lease_expires_at is None
        nap = await nap_events(app, dag.run_id)
        first = nap[0].at
        # Due when the delay ends, counted from its one recorded start.
        assert row.ready_at is not None and abs(row.ready_at - (first + 5.0)) < 1e-3
        assert row.status == "running"
        await dag.result(20)
        nap = await nap_events(app, dag.run_id)
        info = await app.get_run(dag.run_id)
    assert info.status == "succeeded"
    assert started(nap) == 1
    done = [e for e in nap if isinstance(e.event, ev.StepCompleted)]
    assert len(done) == 1 and done[0].at >= first + 5.0


async def test_a_parked_delay_woken_early_again_and_again_keeps_its_start(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, park_after=0.05)
    wakes = 12  # more than MAX_INTERRUPTED_STARTS

    async with app:
        name = register(app, tmp_path, delaying(3000))
        dag = await app.start(name)
        await until(lambda: parked(app, dag.run_id))
        for i in range(wakes):
            await app.signal(dag.run_id, "poke", i)

            async def recorded_and_parked(n: int = i + 1) -> bool:
                info = await app.get_run(dag.run_id)
                assert info.status == "running", info.steps  # not failed: StepInterrupted
                signals = [
                    e
                    for e in await app.events(dag.run_id)
                    if isinstance(e.event, ev.SignalReceived)
                ]
                return len(signals) == n and await parked(app, dag.run_id)

            # Each signal wakes the run on its own: recorded, then the run parks again.
            await until(recorded_and_parked)
        await dag.result(20)
        events = await app.events(dag.run_id)
        nap = await nap_events(app, dag.run_id)
        info = await app.get_run(dag.run_id)
    assert info.status == "succeeded"
    completed = next(e for e in nap if isinstance(e.event, ev.StepCompleted))
    signals = [e for e in events if isinstance(e.event, ev.SignalReceived)]
    assert len(signals) == wakes
    assert all(s.seq < completed.seq for s in signals)  # all arrived during the delay
    assert started(nap) == 1
    assert not [e for e in events if isinstance(e.event, ev.StepFailed)]
    assert completed.at >= nap[0].at + 3.0


async def test_cancelling_a_parked_dag_run_ends_it_promptly(tmp_path: Path) -> None:
    app = make_app(tmp_path, park_after=0.1)

    async with app:
        name = register(app, tmp_path, delaying(30_000))
        dag = await app.start(name)
        await until(lambda: parked(app, dag.run_id))
        began = time.monotonic()
        await app.cancel(dag.run_id, "not today")

        async def ended() -> bool:
            return (await app.get_run(dag.run_id)).status == "cancelled"

        await until(ended, timeout=10)
        took = time.monotonic() - began
        events = await app.events(dag.run_id)
    assert took < 2.0
    assert isinstance(events[-1].event, ev.RunCancelled)
    assert sum(isinstance(e.event, ev.CancelRequested) for e in events) == 1
