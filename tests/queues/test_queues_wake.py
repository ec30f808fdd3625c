"""A queue admits its next run when a slot frees, a delay ends or a rate window moves on, not
at the worker's next poll. The workers here poll every 60 s: anything that waited for the
poll would blow the test's bounds many times over (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sdk import App, Context

LONG_POLL = 60.0


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'q.db'}"


def make_app(url: str, name: str = "job", **limits: object) -> App:
    app = App(url, poll_interval=LONG_POLL)
    app.queue("jobs", **limits)  # type: ignore[arg-type]

    @app.workflow(name=name)
    async def job(ctx: Context, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return time.time()

    return app


async def test_a_run_ending_admits_the_next_at_once(url: str) -> None:
    async with make_app(url, concurrency=1) as app:
        handles = [await app.start("job", 0.05, queue="jobs") for _ in range(4)]
        started = time.time()
        ends = [await h.result(timeout=20) for h in handles]
    # Four runs one at a time: each admitted when the one before ended.
    assert max(ends) - started < 10.0, ends


async def test_a_delay_ending_admits_the_run_without_the_poll(url: str) -> None:
    async with make_app(url) as app:
        await asyncio.sleep(0.3)  # the worker has claimed once and gone idle
        started = time.time()
        handle = await app.start("job", 0.05, queue="jobs", delay=1.0)
        ended = await handle.result(timeout=20)
    assert 1.0 <= ended - started < 8.0


async def test_a_rate_window_moving_on_admits_the_next(url: str) -> None:
    async with make_app(url, rate_limit=(1, 1.0)) as app:
        handles = [await app.start("job", 0.05, queue="jobs") for _ in range(3)]
        started = time.time()
        ends = sorted([await h.result(timeout=20) for h in handles])
    # One start per second: about 2 s for three, never the 60 s poll.
    assert ends[2] - ends[0] >= 1.9
    assert ends[2] - started < 10.0, ends


async def test_a_run_ending_in_one_process_wakes_the_workers_of_another(
    pg_fresh_url: str,
) -> None:
    # Two apps whose workers run different workflows share a queue of one: the second's run
    # is admitted only when the first's ends, which only the database can tell its worker.
    one = make_app(pg_fresh_url, "first", concurrency=1)
    two = make_app(pg_fresh_url, "second", concurrency=1)
    async with one, two:
        first = await one.start("first", 1.5, queue="jobs")
        await asyncio.sleep(0.5)  # "first" holds the slot while "second" is queued
        second = await two.start("second", 0.05, queue="jobs")
        first_end = await first.result(timeout=20)
        second_end = await second.result(timeout=20)
    assert 0 <= second_end - first_end < 8.0
