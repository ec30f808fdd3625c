"""Queues through the App, on SQLite and PostgreSQL: priorities, dedupe (refused naming the
run, or its handle), a delayed start that survives closing the app, and the clear errors of
bad declarations and starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from durable import DuplicateRunError, QueueError
from sdk import App, Context

ORDER: list[str] = []


def make_app(url: str, *, worker: bool = True, concurrency: int = 1) -> App:
    app = App(url, worker=worker, poll_interval=0.05)
    app.queue("emails", concurrency=concurrency)

    @app.workflow
    async def email(ctx: Context, name: str) -> str:
        ORDER.append(name)
        return name

    return app


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'q.db'}"


async def test_a_higher_priority_run_queued_later_starts_first(url: str) -> None:
    ORDER.clear()
    async with make_app(url, worker=False) as app:
        for n in range(3):
            await app.start("email", f"low{n}", queue="emails")
        await app.start("email", "high", queue="emails", priority=5)
        await app.start("email", "mid", queue="emails", priority=1)
    async with make_app(url) as app:
        for run in await app.list_runs(workflow="email"):
            await app.handle(run.run_id).result(timeout=30)
    assert ORDER == ["high", "mid", "low0", "low1", "low2"]


async def test_dedupe_refuses_naming_the_run_or_returns_its_handle(url: str) -> None:
    async with make_app(url, worker=False) as app:
        first = await app.start("email", "a", queue="emails", dedupe_key="order-7")
        with pytest.raises(DuplicateRunError) as refused:
            await app.start("email", "b", queue="emails", dedupe_key="order-7")
        assert refused.value.existing_run_id == first.run_id
        assert first.run_id in str(refused.value) and "order-7" in str(refused.value)
        same = await app.start(
            "email", "c", queue="emails", dedupe_key="order-7", if_duplicate="return"
        )
        assert same.run_id == first.run_id
        assert len(await app.list_runs(workflow="email")) == 1
    async with make_app(url) as app:
        assert await app.handle(first.run_id).result(timeout=30) == "a"
        # Ended: the key is free again.
        again = await app.start("email", "d", queue="emails", dedupe_key="order-7")
        assert again.run_id != first.run_id
        assert await app.handle(again.run_id).result(timeout=30) == "d"


async def test_a_delayed_start_waits_and_survives_closing_the_app(url: str) -> None:
    async with make_app(url) as app:
        asked = time.time()
        handle = await app.start("email", "later", queue="emails", delay=1.5)
    # Closed before its time: a new app (another process, as far as the database knows)
    # runs it, not before the delay.
    async with make_app(url) as app:
        info = await app.queue_info("emails")
        assert info.waiting == 1
        assert await app.handle(handle.run_id).result(timeout=30) == "later"
        assert time.time() - asked >= 1.5
        assert ORDER[-1] == "later"
        run = await app.get_run(handle.run_id)
        assert run.status == "succeeded"


async def test_list_and_show_queues(url: str) -> None:
    async with make_app(url, worker=False, concurrency=3) as app:
        await app.start("email", "x", queue="emails")
        (info,) = await app.list_queues()
        assert (info.name, info.concurrency, info.waiting, info.running) == ("emails", 3, 1, 0)
        assert info.oldest_waiting is not None
        with pytest.raises(QueueError, match=r"no queue 'nope'.*declared: emails"):
            await app.queue_info("nope")


def test_bad_declarations_and_starts_are_refused_clearly() -> None:
    app = App("memory://", worker=False)
    with pytest.raises(QueueError, match=r"rate_limit must be \(starts, seconds\)"):
        app.queue("q", rate_limit=100)  # type: ignore[arg-type]
    with pytest.raises(QueueError, match="concurrency must be a whole number >= 1"):
        app.queue("q", concurrency=0)
    app.queue("q", concurrency=2)
    with pytest.raises(QueueError, match="declared twice"):
        app.queue("q", concurrency=3)


async def test_bad_starts_are_refused_before_anything_is_written() -> None:
    async with make_app("memory://", worker=False) as app:
        with pytest.raises(QueueError, match=r"queue 'other' is not declared.*app.queue"):
            await app.start("email", "x", queue="other")
        with pytest.raises(QueueError, match="priority apply to queued runs only"):
            await app.start("email", "x", priority=3)
        with pytest.raises(QueueError, match="delay must be seconds >= 0"):
            await app.start("email", "x", queue="emails", delay=-1)
        with pytest.raises(QueueError, match="priority must be a whole number"):
            await app.start("email", "x", queue="emails", priority=1.5)  # type: ignore[arg-type]
        assert await app.list_runs() == []
