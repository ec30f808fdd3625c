"""Firing one schedule's due ticks: the overlap policy, the run, then the compare-and-set
that moves the schedule on.

Exactly one run per tick, with any number of workers: the run id is the schedule's name and
the tick (`nightly@2026-12-03T03:00:00Z`) and starting a run is idempotent on its id, so two
workers that both decide to fire a tick start one run; the compare-and-set on the row's
revision then lets one of them move the cursor (the other reads the row again). A worker
killed between the start and the compare-and-set leaves the cursor on the tick: the next
worker finds the tick's run and only moves the cursor.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from durable._errors import DurableError
from durable.schedules._cron import check_timezone, local_text, utc_text
from durable.schedules._plan import next_step
from storage import ACTIVE_STATUSES, ScheduleRecord, StorageError

if TYPE_CHECKING:
    from durable._client import Client

log = logging.getLogger("durable.schedules")

# Compare-and-set rounds per call before giving up until the next look (others are busy
# moving the same schedule: they will have done the work).
MAX_ROUNDS = 50


def run_id(name: str, tick: float) -> str:
    return f"{name}@{utc_text(tick)}"


def tick_input(record: ScheduleRecord, tick: float, *, manual: bool = False) -> dict[str, Any]:
    """What a scheduled run gets as input: its tick, in UTC and in the schedule's timezone."""
    zone = check_timezone(record.timezone, record.name)
    return {
        "schedule": record.name,
        "scheduled_at": utc_text(tick),
        "scheduled_at_local": local_text(tick, zone),
        "timezone": record.timezone,
        "manual": manual,
    }


async def start_tick(
    client: Client, record: ScheduleRecord, tick: float, *, manual: bool = False
) -> str:
    rid = run_id(record.name, tick)
    await client.start(record.workflow, tick_input(record, tick, manual=manual), run_id=rid)
    return rid


async def _unfinished(client: Client, run: str | None) -> bool:
    if run is None:
        return False
    found = await client.store.get_run(run)
    return found is not None and found.status in ACTIVE_STATUSES


async def fire_due(client: Client, name: str, now: float | None = None) -> list[str]:
    """Handle every due tick of schedule `name`; returns the ids of the runs started here."""
    started: list[str] = []
    for _ in range(MAX_ROUNDS):
        record = await client.store.get_schedule(name)
        at = time.time() if now is None else now
        if record is None or (step := next_step(record, at)) is None:
            return started
        changes: dict[str, Any] = {"next_tick": step.cursor, "holding": False, "updated_at": at}
        if step.tick is not None:
            tick = step.tick
            rid = run_id(name, tick)
            exists = await client.store.get_run(rid) is not None
            previous = record.last_run_id
            if not exists and previous != rid and await _unfinished(client, previous):
                if record.overlap == "skip":
                    log.info("schedule %s: tick %s skipped, %s still runs", name, rid, previous)
                    changes["last_tick"] = tick
                    await client.store.update_schedule(
                        msgspec.structs.replace(record, **changes), record.revision
                    )
                    continue
                if record.overlap == "queue":
                    if record.holding:
                        return started  # still waiting for the previous run
                    held = msgspec.structs.replace(
                        record, next_tick=tick, holding=True, updated_at=at
                    )
                    await client.store.update_schedule(held, record.revision)
                    continue
                if record.overlap == "cancel_previous" and previous is not None:
                    await _cancel(client, previous, rid)
            if not exists:
                await start_tick(client, record, tick)
                started.append(rid)
            changes.update(last_tick=tick, last_run_id=rid)
        await client.store.update_schedule(
            msgspec.structs.replace(record, **changes), record.revision
        )
    return started


async def _cancel(client: Client, previous: str, rid: str) -> None:
    try:
        await client.cancel(previous, f"schedule: {rid} replaces it (cancel_previous)")
    except (DurableError, ValueError, StorageError) as exc:  # it ended meanwhile
        log.info("schedule: could not cancel %s before %s: %s", previous, rid, exc)
