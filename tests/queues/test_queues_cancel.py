"""Cancelling a queued run that still waits, through the App, on SQLite and PostgreSQL: it ends
`cancelled` at once (no worker, no slot, no workflow code), whatever keeps it waiting (a full
queue, a delay, a debounce burst); result() raises RunCancelled; the queue's counts lose it and
the run holding the slot goes on; its log folds and replays as a cancelled run, and retry()
queues it again. A DAG whose queued step's child waits behind another run's slot is cancelled
with that child at once. A run the queue already admitted is cancelled by its executor, as
before."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from durable import RunCancelled
from durable._events import CancelRequested, RunStarted
from durable._events import RunCancelled as RunCancelledEvent
from durable._replay import replay
from sdk import App, Context

CALLED: list[str] = []


def make_app(url: str, *, worker: bool = True) -> App:
    app = App(url, worker=worker, poll_interval=0.05)
    app.queue("emails", concurrency=1)

    @app.workflow
    async def hold(ctx: Context) -> str:
        """Holds the queue's one slot until told to let go."""
        await ctx.wait_for_signal("go")
        return "held"

    @app.step()
    async def deliver(name: str) -> str:
        CALLED.append(name)  # a step: a replay does not run it again
        return name

    @app.workflow
    async def email(ctx: Context, name: str) -> str:
        return await deliver(name)

    return app


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'c.db'}"


async def until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def hold_the_slot(app: App) -> str:
    holder = await app.start("hold", queue="emails", run_id="holder")

    async def running() -> bool:
        return (await app.get_run("holder")).status == "running"

    await until(running)
    return holder.run_id


async def assert_cancelled_unrun(app: App, run_id: str) -> None:
    """Ended cancelled, with the log of a run cancelled before its first step."""
    run = await app.get_run(run_id)
    assert run.status == "cancelled" and run.finished_at is not None
    with pytest.raises(RunCancelled):
        await app.handle(run_id).result(timeout=2)
    events = await app.events(run_id)
    assert [type(e.event) for e in events] == [RunStarted, CancelRequested, RunCancelledEvent]
    asked = events[1].event
    assert isinstance(asked, CancelRequested) and asked.reason == "not needed"
    assert asked.inbox_id == 0  # ended by the cancel itself: no request was ever queued
    assert await app.engine.client.store.read_inbox([run_id]) == []
    report = await replay(run_id, events, app.registry)
    assert report.deterministic, report.divergence
    assert (report.status, report.events) == ("cancelled", 3)


async def test_a_run_waiting_behind_a_full_queue_is_cancelled_at_once(url: str) -> None:
    CALLED.clear()
    async with make_app(url) as app:
        await hold_the_slot(app)
        waiting = await app.start("email", "w", queue="emails", run_id="w")
        assert (await app.queue_info("emails")).waiting == 1
        asked = time.monotonic()
        await app.cancel("w", "not needed")
        # Done when cancel returns: no worker, no admission involved.
        assert (await app.get_run(waiting.run_id)).status == "cancelled"
        assert time.monotonic() - asked < 2.0
        await assert_cancelled_unrun(app, "w")
        info = await app.queue_info("emails")
        assert (info.waiting, info.running) == (0, 1)
        assert (await app.get_run("holder")).status == "running"  # the slot holder goes on
        await app.signal("holder", "go")
        assert await app.handle("holder").result(timeout=30) == "held"
        # The slot freed, nothing was admitted: the cancelled run never runs.
        await asyncio.sleep(0.3)
        assert (await app.get_run("w")).status == "cancelled"
        with pytest.raises(ValueError, match="already ended cancelled"):
            await app.cancel("w")
    assert CALLED == []


async def test_a_delayed_run_is_cancelled_before_its_delay(url: str) -> None:
    CALLED.clear()
    async with make_app(url) as app:
        await app.start("email", "later", queue="emails", delay=3600, run_id="d")
        await app.cancel("d", "not needed")
        await assert_cancelled_unrun(app, "d")
        assert (await app.queue_info("emails")).waiting == 0
    assert CALLED == []


async def test_a_debounced_waiting_run_is_cancelled_and_the_key_begins_anew(url: str) -> None:
    CALLED.clear()
    async with make_app(url) as app:
        first = await app.debounce("email", "k", 3600, "a")
        await app.cancel(first.run_id, "not needed")
        await assert_cancelled_unrun(app, first.run_id)
        # The burst is over: the next call begins a run of its own.
        second = await app.debounce("email", "k", 0.1, "b")
        assert second.run_id != first.run_id
        assert await second.result(timeout=30) == "b"
    assert CALLED == ["b"]


async def test_a_cancelled_waiting_run_retries_into_its_queue(url: str) -> None:
    CALLED.clear()
    async with make_app(url) as app:
        await hold_the_slot(app)
        await app.start("email", "r", queue="emails", run_id="r")
        await app.cancel("r", "not needed")
        await assert_cancelled_unrun(app, "r")
        again = await app.retry("r")
        # Queued again: it waits for the slot like any run.
        assert (await app.queue_info("emails")).waiting == 1
        assert (await app.get_run("r")).status == "pending"
        await app.signal("holder", "go")
        assert await again.result(timeout=30) == "r"
    assert CALLED == ["r"]


async def test_an_admitted_run_is_cancelled_by_its_executor_as_before(url: str) -> None:
    async with make_app(url) as app:
        await hold_the_slot(app)
        await app.cancel("holder", "not needed")
        with pytest.raises(RunCancelled):
            await app.handle("holder").result(timeout=30)
        events = await app.events("holder")
        # Its executor ran it: its wait was cancelled, unlike a run that never started.
        assert len(events) > 3


async def test_without_a_worker_in_the_process_the_cancel_still_ends_it(url: str) -> None:
    """`durable cancel` and the API cancel through a client with no worker: the same path."""
    async with make_app(url, worker=False) as app:
        await app.start("email", "x", queue="emails", run_id="x")
        await app.cancel("x", "not needed")
        await assert_cancelled_unrun(app, "x")
