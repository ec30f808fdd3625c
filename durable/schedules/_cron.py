"""Cron arithmetic, by croniter: checking an expression and a timezone, the ticks after or
before an instant, and the text of a tick (run ids, run input).

Ticks are computed in the schedule's timezone and handed on as Unix seconds. Daylight saving
time is what croniter defines: a wall-clock time that does not exist (02:30 on the spring-
forward day in Europe/Berlin) fires at the first instant after the gap (03:00), and one that
exists twice (02:30 on the fall-back day) fires at both instants.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from durable._errors import ScheduleError

CRON_HELP = (
    "a cron expression has 5 fields (minute hour day-of-month month day-of-week, e.g. "
    "'*/5 * * * *'), or 6 with seconds last ('* * * * * */10')"
)


def croniter(expression: str, start: datetime | None = None) -> Any:
    # Imported on first use: `import sdk` stays as quick as before (croniter and dateutil
    # cost some 25 ms, paid by a process that declares or controls a schedule).
    from croniter import croniter as make

    return make(expression, start)


def check_cron(expression: object, where: str) -> str:
    """`expression` if croniter accepts it, else ScheduleError saying why and how to fix it."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError(
            f"{where}: the cron expression {expression!r} is not a text; {CRON_HELP}"
        )
    from croniter import CroniterError

    try:
        croniter(expression)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(
            f"{where}: the cron expression {expression!r} is not valid ({exc}); {CRON_HELP}"
        ) from None
    return expression


def check_timezone(name: object, where: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"{where}: the timezone {name!r} is not a text; use an IANA name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = sorted(z for z in available_timezones() if z.lower() == name.lower())
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ScheduleError(
            f"{where}: unknown timezone {name!r}; {hint}use an IANA name such as "
            "'UTC', 'Europe/Berlin' or 'America/New_York'"
        ) from None


def _iter(expression: str, zone: ZoneInfo, at: float) -> Any:
    return croniter(expression, datetime.fromtimestamp(at, zone))


def next_after(expression: str, zone: ZoneInfo, at: float) -> float:
    """The first tick strictly after `at`."""
    return float(_iter(expression, zone, at).get_next(float))


def ticks_between(expression: str, zone: ZoneInfo, start: float, end: float) -> Iterator[float]:
    """The ticks t with start <= t <= end, oldest first (lazily: a caller bounds how many)."""
    it = _iter(expression, zone, start - 0.000001)
    while (tick := float(it.get_next(float))) <= end:
        yield tick


def latest_ticks(
    expression: str, zone: ZoneInfo, after: float, until: float, limit: int
) -> list[float]:
    """At most `limit` of the newest ticks t with after <= t <= until, oldest first."""
    it = _iter(expression, zone, until + 0.000001)
    found: list[float] = []
    while len(found) < limit and (tick := float(it.get_prev(float))) >= after:
        found.append(tick)
    return found[::-1]


def utc_text(at: float) -> str:
    """A tick as run ids and inputs show it: 2026-12-03T10:05:00Z (milliseconds if any)."""
    moment = datetime.fromtimestamp(at, UTC)
    if moment.microsecond:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def local_text(at: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, zone).isoformat()


# Instants a schedule deals in: from 1970 to the end of year 9999 (what datetime can show).
LATEST = 253402300799.0


def parse_time(text: object, where: str) -> float:
    """An instant given as ISO 8601 text (an offset or Z; without one: UTC) or Unix seconds."""
    value: float | None = None
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            value = moment.timestamp()
        except (ValueError, OverflowError):
            pass
    if value is not None and 0 <= value <= LATEST - 86400 * 2:
        return value
    raise ScheduleError(
        f"{where}: {text!r} is not a time from 1970 to 9999; give ISO 8601 such as "
        "'2026-12-01T00:00:00Z' or '2026-12-01T01:00:00+01:00'"
    )
