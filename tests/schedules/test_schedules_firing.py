"""Schedules fired by a real engine on a real SQLite file, with second-resolution crons
(a 6th field) so that ticks come fast: runs and their input, catch-up after real downtime,
the overlap policies, and the Python controls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from durable import ScheduleError, decode_value
from durable.events import RunStarted
from durable.schedules._cron import parse_time
from sdk import App, Context

EVERY_SECOND = "* * * * * *"


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """URLs of fresh databases of one backend: a file each on SQLite, a schema on PostgreSQL."""
    if request.param == "postgres":
        schemas = request.getfixturevalue("pg_schema_factory")
        urls: dict[str, str] = {}
        return lambda name: urls.setdefault(name, schemas.fresh_url())
    return lambda name: f"sqlite:///{tmp_path / name}.db"


def build(url: str, *, worker: bool = True, **schedule: Any) -> App:
    app = App(url, worker=worker, poll_interval=0.1)

    @app.workflow
    async def tick(ctx: Context, tick: dict[str, Any]) -> str:
        return str(tick["scheduled_at"])

    @app.workflow
    async def slow(ctx: Context, tick: dict[str, Any]) -> str:
        await ctx.wait_for_signal("go")  # unfinished until the test says so
        return str(tick["scheduled_at"])

    if schedule:
        app.add_schedule(
            schedule.pop("workflow", "tick"), schedule.pop("cron", EVERY_SECOND), **schedule
        )
    return app


async def runs_of(app: App, workflow: str = "tick") -> dict[str, str]:
    """run id -> status, of the scheduled runs."""
    return {r.run_id: r.status for r in await app.list_runs(workflow=workflow, limit=1000)}


async def until(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def tick_of(run_id: str) -> float:
    return parse_time(run_id.split("@", 1)[1], run_id)


async def test_each_tick_runs_once_with_its_scheduled_time_as_input(
    db: Callable[[str], str],
) -> None:
    url = db("runs")
    async with build(url, workflow="tick", name="beat") as app:
        await until(lambda: _at_least(app, 3))
        await asyncio.sleep(0.3)
    async with build(url, worker=False) as app:
        runs = await app.list_runs(workflow="tick", limit=100)
        ticks = sorted(tick_of(r.run_id) for r in runs)
        assert all(r.run_id.startswith("beat@") and r.run_id.endswith("Z") for r in runs)
        # One run per second, none missing, none twice.
        assert ticks == [ticks[0] + i for i in range(len(ticks))]
        for r in runs:
            info = await app.get_run(r.run_id)
            if info.status == "succeeded":
                assert await app.handle(r.run_id).result() == r.run_id.split("@", 1)[1]
            started = (await app.events(r.run_id))[0].event
            assert isinstance(started, RunStarted)
            given = decode_value(started.input)
            assert given["schedule"] == "beat" and given["manual"] is False
            assert given["scheduled_at"] == r.run_id.split("@", 1)[1]
            assert given["timezone"] == "UTC"


async def _at_least(app: App, n: int, workflow: str = "tick") -> bool:
    return sum(s == "succeeded" for s in (await runs_of(app, workflow)).values()) >= n


@pytest.mark.parametrize(
    ("catchup", "late", "fired"),
    [
        # Down from 09:59 to 10:31 (10:00 ... 10:30 due, 10:30 a minute late); 5-minute cron.
        ("skip", 61.0, []),  # more than grace (60 s) late: none
        ("skip", 30.0, ["10:30"]),  # 10:30 is 30 s late: within grace
        ("one", 61.0, ["10:30"]),  # the newest only
        ("all", 61.0, ["10:20", "10:25", "10:30"]),  # the newest catchup_limit=3, oldest first
    ],
)
async def test_catch_up_after_downtime(
    db: Callable[[str], str], catchup: str, late: float, fired: list[str]
) -> None:
    """fire_due's `now` is the clock seam: the downtime is told, not waited for."""
    from durable.schedules._fire import fire_due

    url = db("runs")
    # overlap="allow": no worker runs them here, and "skip" would skip ticks after the first.
    app = build(
        url,
        worker=False,
        cron="*/5 * * * *",
        name="s",
        catchup=catchup,
        catchup_limit=3,
        overlap="allow",
    )
    async with app:
        client = app.engine.client
        record = await client.store.get_schedule("s")
        assert record is not None
        t0 = parse_time("2026-12-03T10:00:00Z", "t")
        down = msgspec.structs.replace(record, next_tick=t0, updated_at=t0 - 60)
        assert await client.store.update_schedule(down, record.revision)
        started = await fire_due(client, "s", now=t0 + 30 * 60 + late)
        assert started == [f"s@2026-12-03T{hm}:00Z" for hm in fired]
        assert sorted(await runs_of(app)) == started  # nothing else started
        after = await client.store.get_schedule("s")
        assert after is not None and after.next_tick == t0 + 35 * 60  # 10:35 next
        # Asked again at the same time (another worker, or a retry): nothing more.
        assert await fire_due(client, "s", now=t0 + 30 * 60 + late) == []


async def test_real_downtime_with_catchup_all(db: Callable[[str], str]) -> None:
    url = db("runs")
    spec: dict[str, Any] = {"catchup": "all", "catchup_limit": 3, "grace": 0.5}
    async with build(url, **spec) as app:
        await until(lambda: _at_least(app, 1))
    async with build(url, worker=False) as app:
        before = set(await runs_of(app))
    await asyncio.sleep(4.2)  # 4 or 5 ticks fall due with no worker
    async with build(url, **spec) as app:
        opened = time.time()
        await asyncio.sleep(0.5)
        new = sorted(tick_of(r) for r in set(await runs_of(app)) - before)
    caught_up = [t for t in new if t < opened - 1.0]  # runs only a catch-up can have started
    assert 1 <= len(caught_up) <= 2
    assert new[0] >= max(tick_of(r) for r in before) + 2  # older missed ticks were dropped
    assert new == [new[0] + i for i in range(len(new))]


async def test_overlap_skip_runs_nothing_while_the_previous_runs(
    db: Callable[[str], str],
) -> None:
    async with build(db("runs"), workflow="slow", overlap="skip") as app:
        await until(lambda: _count(app, 1))
        await asyncio.sleep(2.5)
        (first,) = await runs_of(app, "slow")
        await app.signal(first, "go")
        await until(lambda: _count(app, 2))  # the next tick after it ended
        second = max(await runs_of(app, "slow"), key=tick_of)
        assert tick_of(second) >= tick_of(first) + 3


async def _count(app: App, n: int, workflow: str = "slow") -> bool:
    return len(await runs_of(app, workflow)) >= n


async def test_overlap_queue_starts_the_held_tick_when_the_previous_ends(
    db: Callable[[str], str],
) -> None:
    async with build(db("runs"), workflow="slow", overlap="queue") as app:
        await until(lambda: _count(app, 1))
        (first,) = await runs_of(app, "slow")
        await asyncio.sleep(2.5)
        assert list(await runs_of(app, "slow")) == [first]
        (listed,) = await app.list_schedules()
        assert listed.waiting_for_previous
        await app.signal(first, "go")
        await until(lambda: _count(app, 2))
        second = min(set(await runs_of(app, "slow")) - {first}, key=tick_of)
        assert tick_of(second) == tick_of(first) + 1  # the tick that waited, not a later one


async def test_overlap_cancel_previous_and_allow(db: Callable[[str], str]) -> None:
    url = db("cancel")
    async with build(url, workflow="slow", overlap="cancel_previous") as app:
        await until(lambda: _count(app, 3))
        await asyncio.sleep(0.5)
        runs = await runs_of(app, "slow")
        newest = max(runs, key=tick_of)
        assert runs[newest] in ("pending", "running")
        older = [s for r, s in runs.items() if tick_of(r) < tick_of(newest) - 1.5]
        assert older and set(older) == {"cancelled"}
    url = db("allow")
    async with build(url, workflow="slow", overlap="allow") as app:
        await until(lambda: _count(app, 3))
        assert set((await runs_of(app, "slow")).values()) <= {"pending", "running"}


async def test_pause_resume_trigger_backfill(db: Callable[[str], str]) -> None:
    url = db("runs")
    app = build(url, cron="0 3 * * *", timezone="Europe/Berlin", name="nightly")
    app.add_schedule("tick", "0 0 1 1 *", name="yearly")
    async with app:
        listed, _ = await app.list_schedules()
        assert listed.next_run is not None and listed.next_run.endswith(":00:00Z")
        assert (await app.pause_schedule("nightly")).next_run is None
        assert [s.paused for s in await app.list_schedules()] == [True, False]
        resumed = await app.resume_schedule("nightly")
        assert not resumed.paused and resumed.next_run == listed.next_run

        manual = await app.trigger_schedule("nightly")
        assert manual.startswith("nightly@")
        assert (await app.handle(manual).result(timeout=10)) == manual.split("@", 1)[1]

        # 03:00 Berlin on three days across the spring-forward night: 02:00 UTC after it.
        ids = await app.backfill_schedule(
            "nightly", "2026-03-28T00:00:00+01:00", "2026-03-30T12:00:00+02:00"
        )
        assert ids == [
            "nightly@2026-03-28T02:00:00Z",
            "nightly@2026-03-29T01:00:00Z",
            "nightly@2026-03-30T01:00:00Z",
        ]
        for rid in ids:
            assert await app.handle(rid).result(timeout=10) == rid.split("@", 1)[1]
        # Again: the same ticks, no second run.
        again = await app.backfill_schedule("nightly", "2026-03-28T00:00:00Z", "2026-03-30T12:00Z")
        assert again == ids
        assert len(await runs_of(app)) == 4

        with pytest.raises(ScheduleError, match="no schedule named 'weekly'"):
            await app.pause_schedule("weekly")
        with pytest.raises(ScheduleError, match="end is before the start"):
            await app.backfill_schedule("nightly", "2026-03-30T00:00Z", "2026-03-28T00:00Z")
        with pytest.raises(ScheduleError, match="is not a time"):
            await app.backfill_schedule("nightly", "yesterday", "2026-03-28T00:00Z")
        with pytest.raises(ScheduleError, match="more than 1000 ticks"):
            await app.backfill_schedule("nightly", "1990-01-01T00:00Z", "2026-12-01T00:00Z")


async def test_a_bad_declaration_is_refused_before_anything_runs(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'r.db'}")

    async def loose(ctx: Context, tick: dict[str, Any]) -> None: ...

    with pytest.raises(ScheduleError, match=r"put @app\.schedule"):
        app.schedule("* * * * *")(loose)

    @app.workflow
    async def no_input(ctx: Context) -> None: ...

    with pytest.raises(ScheduleError, match="is not valid"):
        app.add_schedule(no_input, "99 * * * *")
    app.add_schedule(no_input, "* * * * *")
    with pytest.raises(ScheduleError, match="takes no input"):
        await app.open()
    assert not app.is_open

    other = App(f"sqlite:///{tmp_path / 'r2.db'}")

    @other.workflow
    async def counts(ctx: Context, n: int) -> None: ...

    other.add_schedule(counts, "* * * * *")
    with pytest.raises(ScheduleError, match=r"its input does not match its annotation int"):
        await other.open()
    assert not other.is_open
