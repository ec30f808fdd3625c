"""Schedule rows: the record, its SQL for both SQL backends, and the SQLite writer's operations.

A schedule row has two halves. The spec (workflow, cron, timezone, policies) is written by
every process that declares the schedule: put_schedule inserts it or updates it in place,
keeping the state. The state (paused, next_tick, last_tick, last_run_id, holding) changes only
by update_schedule, a compare-and-set on `revision`: of two workers that read the same row,
one writes and the other is told to read again, so a tick is never handled twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from storage._sql_text import numbered


class ScheduleRecord(msgspec.Struct, frozen=True):
    """A schedule's row. Times are Unix seconds; booleans are stored as 0/1."""

    name: str
    workflow: str
    cron: str
    timezone: str
    catchup: str
    catchup_limit: int
    grace: float
    overlap: str
    paused: bool
    next_tick: float | None
    last_tick: float | None
    last_run_id: str | None
    holding: bool
    revision: int
    created_at: float
    updated_at: float


COLUMNS = (
    "name, workflow, cron, timezone, catchup, catchup_limit, grace, overlap, paused, "
    "next_tick, last_tick, last_run_id, holding, revision, created_at, updated_at"
)

# Insert, or update the spec of a row that exists, only when it changed (a worker starting
# with the same declaration writes nothing and does not disturb a compare-and-set in flight).
# A changed cron or timezone restarts the row's ticks at the declaration's next_tick.
_UPSERT = f"""
INSERT INTO durable_schedules ({COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    workflow = excluded.workflow, cron = excluded.cron, timezone = excluded.timezone,
    catchup = excluded.catchup, catchup_limit = excluded.catchup_limit,
    grace = excluded.grace, overlap = excluded.overlap, updated_at = excluded.updated_at,
    revision = durable_schedules.revision + 1,
    next_tick = CASE
        WHEN durable_schedules.cron <> excluded.cron
            OR durable_schedules.timezone <> excluded.timezone
        THEN excluded.next_tick ELSE durable_schedules.next_tick END,
    holding = CASE
        WHEN durable_schedules.cron <> excluded.cron
            OR durable_schedules.timezone <> excluded.timezone
        THEN 0 ELSE durable_schedules.holding END
WHERE durable_schedules.workflow <> excluded.workflow
    OR durable_schedules.cron <> excluded.cron
    OR durable_schedules.timezone <> excluded.timezone
    OR durable_schedules.catchup <> excluded.catchup
    OR durable_schedules.catchup_limit <> excluded.catchup_limit
    OR durable_schedules.grace <> excluded.grace
    OR durable_schedules.overlap <> excluded.overlap
"""

_UPDATE = """
UPDATE durable_schedules SET paused = ?, next_tick = ?, last_tick = ?, last_run_id = ?,
    holding = ?, updated_at = ?, revision = revision + 1
WHERE name = ? AND revision = ?
"""

_SELECT = f"SELECT {COLUMNS} FROM durable_schedules WHERE name = ?"
_LIST = f"SELECT {COLUMNS} FROM durable_schedules ORDER BY name"


SQLITE_SELECT = _SELECT
SQLITE_LIST = _LIST
PG_UPSERT = numbered(_UPSERT)
PG_UPDATE = numbered(_UPDATE) + " RETURNING 1"
PG_SELECT = numbered(_SELECT)
PG_LIST = _LIST


def insert_args(record: ScheduleRecord) -> tuple[object, ...]:
    return (
        record.name,
        record.workflow,
        record.cron,
        record.timezone,
        record.catchup,
        record.catchup_limit,
        record.grace,
        record.overlap,
        int(record.paused),
        record.next_tick,
        record.last_tick,
        record.last_run_id,
        int(record.holding),
        record.revision,
        record.created_at,
        record.updated_at,
    )


def update_args(record: ScheduleRecord, expected_revision: int) -> tuple[object, ...]:
    return (
        int(record.paused),
        record.next_tick,
        record.last_tick,
        record.last_run_id,
        int(record.holding),
        record.updated_at,
        record.name,
        expected_revision,
    )


def row_to_schedule(row: Sequence[object]) -> ScheduleRecord:
    values = list(row)
    values[8] = bool(values[8])
    values[12] = bool(values[12])
    return ScheduleRecord(*values)  # type: ignore[arg-type]  # column order matches the struct


def put_schedule(cur: sqlite3.Cursor, record: ScheduleRecord) -> ScheduleRecord:
    cur.execute(_UPSERT, insert_args(record))
    return row_to_schedule(cur.execute(_SELECT, (record.name,)).fetchone())


def update_schedule(cur: sqlite3.Cursor, record: ScheduleRecord, expected_revision: int) -> bool:
    cur.execute(_UPDATE, update_args(record, expected_revision))
    return cur.rowcount == 1
