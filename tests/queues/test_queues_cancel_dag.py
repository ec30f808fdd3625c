"""A DAG run cancelled while its queued step's child waits behind another run's slot, on
SQLite and PostgreSQL: the waiting child ends cancelled at once (it never runs, takes no
slot), the run's cancellation does not wait for the queue, and the run holding the slot goes
on."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest

from durable._events import CancelRequested, RunCancelled, RunStarted
from sdk import App

SLOW = textwrap.dedent("""\
    name: slow
    queues:
      one: {concurrency: 1}
    tasks:
      wait:
        queue: one
        script: "sleep 30"
    """)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'dag.db'}"


async def statuses(app: App) -> dict[str, str]:
    return {r.run_id: r.status for r in await app.list_runs(limit=20)}


async def test_a_cancelled_run_ends_its_waiting_queued_child_at_once(
    url: str, tmp_path: Path
) -> None:
    file = tmp_path / "slow.yaml"
    file.write_text(SLOW)
    app = App(url, poll_interval=0.1)
    name = app.register_dag(file)
    async with app:
        await app.start(name, None, run_id="a")
        for _ in range(200):  # until a's child holds the slot
            if (await app.queue_info("one")).running == 1:
                break
            await asyncio.sleep(0.05)
        await app.start(name, None, run_id="b")
        for _ in range(200):  # until b's child waits for it
            if (await app.queue_info("one")).waiting == 1:
                break
            await asyncio.sleep(0.05)
        (waiting,) = [r for r in await app.list_runs(limit=20) if r.run_id.startswith("b.")]
        (holding,) = [r for r in await app.list_runs(limit=20) if r.run_id.startswith("a.")]
        asked = time.monotonic()
        await app.cancel("b")
        while time.monotonic() - asked < 10:
            now = await statuses(app)
            if now["b"] == "cancelled" and now[waiting.run_id] == "cancelled":
                break
            await asyncio.sleep(0.05)
        took = time.monotonic() - asked
        now = await statuses(app)
        assert (now["b"], now[waiting.run_id]) == ("cancelled", "cancelled")
        assert took < 5.0, took  # not the 30 s the slot holder still needs
        assert (now["a"], now[holding.run_id]) == ("running", "running")
        info = await app.queue_info("one")
        assert (info.waiting, info.running) == (0, 1)
        # The child never ran: its log is that of a run cancelled before its first step,
        # the request its parent's commit sent consumed.
        events = await app.events(waiting.run_id)
        assert [type(e.event) for e in events] == [RunStarted, CancelRequested, RunCancelled]
        request = events[1].event
        assert isinstance(request, CancelRequested) and request.inbox_id > 0
        await app.cancel("a")
        for _ in range(200):
            if (await statuses(app))["a"] == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert (await statuses(app))["a"] == "cancelled"
