"""Which tick a schedule handles next, from its row and the time: a pure function, so every
worker that reads the same row at the same time makes the same decision (and tests can ask
for any 'now' without waiting)."""

from __future__ import annotations

from dataclasses import dataclass

from durable.schedules._cron import check_timezone, latest_ticks, next_after
from durable.schedules._spec import MAX_CATCHUP
from storage import ScheduleRecord


@dataclass(frozen=True, slots=True)
class Step:
    """Handle `tick` (None: no due tick is to run, only move the cursor), then continue at
    `cursor`: the next tick to handle. `held`: the tick waited for the previous run (overlap
    "queue") and runs now whatever its lateness."""

    tick: float | None
    cursor: float
    held: bool = False


def candidates(record: ScheduleRecord, now: float, after: float) -> list[float]:
    """The due ticks in [after, now] the catch-up policy runs, oldest first."""
    zone = check_timezone(record.timezone, record.name)
    if record.catchup == "skip":
        start = max(after, now - record.grace)
        return latest_ticks(record.cron, zone, start, now, MAX_CATCHUP)
    limit = 1 if record.catchup == "one" else record.catchup_limit
    return latest_ticks(record.cron, zone, after, now, limit)


def next_step(record: ScheduleRecord, now: float) -> Step | None:
    """What to do now, or None if nothing is due (or the schedule is paused)."""
    due = record.next_tick
    if record.paused or due is None or due > now:
        return None
    zone = check_timezone(record.timezone, record.name)
    after_now = next_after(record.cron, zone, now)
    if record.holding:
        rest = [t for t in candidates(record, now, due) if t > due]
        return Step(due, rest[0] if rest else after_now, held=True)
    ticks = candidates(record, now, due)
    if not ticks:
        return Step(None, after_now)
    return Step(ticks[0], ticks[1] if len(ticks) > 1 else after_now)
