"""What a schedule is: its declaration (ScheduleSpec), checked when it is made, and the row it
becomes in the store.

Policies:
- catchup, for ticks that fell due while no worker fired them (downtime): "skip" runs only
  ticks at most `grace` seconds late; "one" runs the newest due tick once; "all" runs every
  due tick, the newest `catchup_limit` of them at most, oldest first.
- overlap, for a tick that falls due while the schedule's previous run is unfinished: "skip"
  it, "queue" it (it starts when the previous run ends; one tick waits at most, later ones
  follow the catch-up policy), "cancel_previous" (ask the previous run to cancel, then start)
  or "allow" (start anyway).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, get_args

from durable._errors import ScheduleError
from durable._ids import check_id
from durable.schedules._cron import check_cron, check_timezone, next_after
from storage import ScheduleRecord

Catchup = Literal["skip", "one", "all"]
Overlap = Literal["skip", "queue", "cancel_previous", "allow"]
CATCHUP: tuple[str, ...] = get_args(Catchup)
OVERLAP: tuple[str, ...] = get_args(Overlap)

# Bounds: a catch-up never starts more runs than this in one go, nor one backfill call.
MAX_CATCHUP = 10_000
MAX_BACKFILL = 1_000


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    name: str
    workflow: str
    cron: str
    timezone: str = "UTC"
    catchup: Catchup = "one"
    catchup_limit: int = 100
    grace: float = 60.0
    overlap: Overlap = "skip"

    def __post_init__(self) -> None:
        check_id("schedule name", self.name)
        where = f"schedule {self.name!r}"
        check_id(f"{where}: workflow name", self.workflow)
        check_cron(self.cron, where)
        check_timezone(self.timezone, where)
        if self.catchup not in CATCHUP:
            raise ScheduleError(
                f"{where}: unknown catchup policy {self.catchup!r}; use one of {list(CATCHUP)}"
            )
        if self.overlap not in OVERLAP:
            raise ScheduleError(
                f"{where}: unknown overlap policy {self.overlap!r}; use one of {list(OVERLAP)}"
            )
        limit = self.catchup_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CATCHUP:
            raise ScheduleError(
                f"{where}: catchup_limit must be a whole number from 1 to {MAX_CATCHUP}, "
                f"not {limit!r}"
            )
        grace = self.grace
        if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
            raise ScheduleError(f"{where}: grace must be seconds >= 0, not {grace!r}")

    def record(self, now: float | None = None) -> ScheduleRecord:
        """The row a new schedule starts as: its first tick is the first one after now."""
        at = time.time() if now is None else now
        return ScheduleRecord(
            name=self.name,
            workflow=self.workflow,
            cron=self.cron,
            timezone=self.timezone,
            catchup=self.catchup,
            catchup_limit=self.catchup_limit,
            grace=float(self.grace),
            overlap=self.overlap,
            paused=False,
            next_tick=next_after(self.cron, check_timezone(self.timezone, ""), at),
            last_tick=None,
            last_run_id=None,
            holding=False,
            revision=0,
            created_at=at,
            updated_at=at,
        )


def spec_of(record: ScheduleRecord) -> ScheduleSpec:
    """The declaration a stored row holds (checked again: a row written by hand may be bad)."""
    return ScheduleSpec(
        name=record.name,
        workflow=record.workflow,
        cron=record.cron,
        timezone=record.timezone,
        catchup=record.catchup,  # type: ignore[arg-type]  # checked by __post_init__
        catchup_limit=record.catchup_limit,
        grace=record.grace,
        overlap=record.overlap,  # type: ignore[arg-type]
    )


def schedule_from_mapping(value: object, *, workflow: str, where: str) -> ScheduleSpec:
    """A `schedule:` entry of a YAML/JSON definition: a cron text, or a mapping with `cron`
    and the optional keys timezone, name, catchup, catchup_limit, grace, overlap."""
    if isinstance(value, str):
        return ScheduleSpec(name=workflow, workflow=workflow, cron=value)
    if not isinstance(value, dict):
        raise ScheduleError(
            f"{where}: `schedule` must be a cron text or a mapping with `cron`, "
            f"not {type(value).__name__}"
        )
    known = {"cron", "timezone", "name", "catchup", "catchup_limit", "grace", "overlap"}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ScheduleError(
            f"{where}: unknown key(s) {unknown} in `schedule`; the keys are {sorted(known)}"
        )
    if "cron" not in value:
        raise ScheduleError(f"{where}: `schedule` needs `cron`, e.g. cron: '*/5 * * * *'")
    fields = {k: v for k, v in value.items() if k != "name"}
    return ScheduleSpec(name=str(value.get("name", workflow)), workflow=workflow, **fields)
