"""Conformance of the schedules table: put_schedule (insert, or update the spec keeping the
state), get/list, and update_schedule's compare-and-set, on every backend; the race of many
stores on one database (the exactly-once of a tick) on the two SQL backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from pgserver import PgSession
from storekit import T0

from storage import ScheduleRecord, Store, open_store


def schedule(name: str = "nightly", cron: str = "0 3 * * *", **changes: object) -> ScheduleRecord:
    record = ScheduleRecord(
        name=name,
        workflow="report",
        cron=cron,
        timezone="Europe/Berlin",
        catchup="one",
        catchup_limit=10,
        grace=60.0,
        overlap="skip",
        paused=False,
        next_tick=T0 + 100,
        last_tick=None,
        last_run_id=None,
        holding=False,
        revision=0,
        created_at=T0,
        updated_at=T0,
    )
    return msgspec.structs.replace(record, **changes)


async def test_put_inserts_then_get_and_list_give_it_back(store: Store) -> None:
    assert await store.get_schedule("nightly") is None
    stored = await store.put_schedule(schedule())
    assert stored == schedule()
    await store.put_schedule(schedule("alpha"))
    assert await store.get_schedule("nightly") == schedule()
    assert [s.name for s in await store.list_schedules()] == ["alpha", "nightly"]


async def test_put_updates_the_spec_and_keeps_the_state(store: Store) -> None:
    await store.put_schedule(schedule())
    state = schedule(paused=True, next_tick=T0 + 500, last_tick=T0 + 400, last_run_id="r1")
    assert await store.update_schedule(state, 0)
    # The same declaration again (a worker restarting): nothing written.
    same = await store.put_schedule(schedule(next_tick=T0 + 999))
    assert same.revision == 1 and same.next_tick == T0 + 500 and same.paused
    # Another policy: the spec changes, the state stays.
    changed = await store.put_schedule(schedule(overlap="allow", next_tick=T0 + 999))
    assert changed.overlap == "allow" and changed.revision == 2
    assert (changed.paused, changed.next_tick, changed.last_run_id) == (True, T0 + 500, "r1")
    # Another cron: the ticks restart at the declaration's next tick (still paused).
    recron = await store.put_schedule(schedule(cron="0 4 * * *", next_tick=T0 + 777))
    assert (recron.cron, recron.next_tick, recron.paused) == ("0 4 * * *", T0 + 777, True)


async def test_update_is_a_compare_and_set_on_the_revision(store: Store) -> None:
    await store.put_schedule(schedule())
    first = schedule(next_tick=T0 + 200, last_tick=T0 + 100, last_run_id="nightly@1", holding=True)
    assert await store.update_schedule(first, 0)
    # A second writer that read revision 0 too loses, and writes nothing.
    assert not await store.update_schedule(schedule(next_tick=T0 + 300), 0)
    got = await store.get_schedule("nightly")
    assert got is not None
    assert (got.next_tick, got.last_tick, got.last_run_id, got.holding, got.revision) == (
        T0 + 200,
        T0 + 100,
        "nightly@1",
        True,
        1,
    )
    assert not await store.update_schedule(schedule("missing"), 0)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database URL several stores open (as other processes would)."""
    if request.param == "postgres":
        schemas: PgSession = request.getfixturevalue("pg_schema_factory")
        return schemas.fresh_url()
    return f"sqlite:///{tmp_path / 'shared.db'}"


async def test_of_many_stores_racing_from_one_revision_exactly_one_wins(shared_url: str) -> None:
    """Four stores of one database (as four workers' processes would have) update the same
    schedule from the same revision at once, round after round: exactly one wins each time."""
    stores = [open_store(shared_url) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await stores[0].put_schedule(schedule())
        for round_ in range(5):
            wins = await asyncio.gather(
                *(
                    s.update_schedule(schedule(next_tick=T0 + 1000 * round_ + i), round_)
                    for i, s in enumerate(stores)
                )
            )
            assert sum(wins) == 1
    finally:
        for s in stores:
            await s.close()
