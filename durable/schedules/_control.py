"""What operators do with schedules (Python, CLI, HTTP API alike): list them with their next
fire times, pause, resume, trigger a run now, backfill a time range."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from durable._errors import ScheduleError, ScheduleNotFoundError
from durable._ids import check_lookup
from durable.schedules._cron import (
    check_timezone,
    next_after,
    parse_time,
    ticks_between,
    utc_text,
)
from durable.schedules._fire import run_id, start_tick
from durable.schedules._spec import MAX_BACKFILL
from storage import ScheduleRecord

if TYPE_CHECKING:
    from durable._client import Client


class ScheduleInfo(msgspec.Struct, frozen=True):
    """A schedule as the CLI, the API and the dashboard show it. Times are ISO 8601 UTC;
    next_run is None while paused."""

    name: str
    workflow: str
    cron: str
    timezone: str
    catchup: str
    catchup_limit: int
    grace: float
    overlap: str
    paused: bool
    next_run: str | None
    waiting_for_previous: bool
    last_tick: str | None
    last_run_id: str | None


def info(record: ScheduleRecord) -> ScheduleInfo:
    return ScheduleInfo(
        name=record.name,
        workflow=record.workflow,
        cron=record.cron,
        timezone=record.timezone,
        catchup=record.catchup,
        catchup_limit=record.catchup_limit,
        grace=record.grace,
        overlap=record.overlap,
        paused=record.paused,
        next_run=None if record.paused or record.next_tick is None else utc_text(record.next_tick),
        waiting_for_previous=record.holding,
        last_tick=None if record.last_tick is None else utc_text(record.last_tick),
        last_run_id=record.last_run_id,
    )


async def list_schedules(client: Client) -> list[ScheduleInfo]:
    return [info(r) for r in await client.store.list_schedules()]


async def get_schedule(client: Client, name: str) -> ScheduleRecord:
    check_lookup("schedule name", name)
    record = await client.store.get_schedule(name)
    if record is None:
        known = [r.name for r in await client.store.list_schedules()]
        have = f"the schedules are {known}" if known else "there are none yet"
        raise ScheduleNotFoundError(
            f"no schedule named {name!r}: {have} (a schedule exists once a process declaring "
            "it, with @app.schedule, app.add_schedule or `schedule:` in a definition, opened)"
        )
    return record


async def set_paused(client: Client, name: str, paused: bool) -> ScheduleInfo:
    """Pause, or resume. Ticks that fall due while paused are not run: a resumed schedule
    continues at its first tick after now."""
    while True:
        record = await get_schedule(client, name)
        now = time.time()
        changes: dict[str, Any] = {"paused": paused, "updated_at": now}
        if not paused and record.paused:
            zone = check_timezone(record.timezone, name)
            changes.update(next_tick=next_after(record.cron, zone, now), holding=False)
        new = msgspec.structs.replace(record, **changes)
        if await client.store.update_schedule(new, record.revision):
            return info(msgspec.structs.replace(new, revision=record.revision + 1))


async def trigger(client: Client, name: str) -> str:
    """Start a run of the schedule now, outside its ticks (paused or not, whatever runs):
    its input's scheduled_at is now, to the millisecond, and so is its run id. The schedule's
    own ticks are unchanged."""
    record = await get_schedule(client, name)
    now = round(time.time(), 3)
    if now == int(now):
        now += 0.001  # a manual run's id never takes a tick's (whole seconds)
    return await start_tick(client, record, now, manual=True)


async def backfill(client: Client, name: str, start: object, end: object) -> list[str]:
    """Run every tick of the schedule from `start` to `end` (both included; ISO 8601 text or
    Unix seconds), oldest first, whatever the overlap policy. A tick that already has its run
    (a regular one, or an earlier backfill) is not run again: the ids are the ticks'."""
    record = await get_schedule(client, name)
    where = f"backfill of schedule {name!r}"
    begin, finish = parse_time(start, f"{where}: start"), parse_time(end, f"{where}: end")
    if finish < begin:
        raise ScheduleError(f"{where}: the end is before the start; swap them")
    zone = check_timezone(record.timezone, name)
    ticks = []
    for tick in ticks_between(record.cron, zone, begin, finish):
        ticks.append(tick)
        if len(ticks) > MAX_BACKFILL:
            raise ScheduleError(
                f"{where}: the range holds more than {MAX_BACKFILL} ticks; backfill it in "
                "shorter ranges"
            )
    started = []
    for tick in ticks:
        rid = run_id(name, tick)
        if await client.store.get_run(rid) is None:
            await start_tick(client, record, tick)
        started.append(rid)
    return started
