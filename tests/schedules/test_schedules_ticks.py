"""Tick arithmetic and the plan, without waiting: DST as croniter defines it, the catch-up
policies after downtime for any 'now', and clear errors for bad declarations."""

from __future__ import annotations

import msgspec
import pytest

from durable import ScheduleError
from durable.schedules import ScheduleSpec
from durable.schedules._cron import check_timezone, local_text, parse_time, ticks_between
from durable.schedules._plan import next_step
from storage import ScheduleRecord

BERLIN = check_timezone("Europe/Berlin", "test")


def local_ticks(cron: str, start: str, end: str) -> list[str]:
    ticks = ticks_between(cron, BERLIN, parse_time(start, "s"), parse_time(end, "e"))
    return [local_text(t, BERLIN) for t in ticks]


def test_spring_forward_a_missing_wall_time_fires_once_after_the_gap() -> None:
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    assert local_ticks("30 2 * * *", "2026-03-28T00:00:00+01:00", "2026-03-31T00:00:00+02:00") == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    # An hourly schedule has no 02:xx tick that night: 23 ticks in that day.
    day = local_ticks("0 * * * *", "2026-03-29T00:00:00+01:00", "2026-03-29T23:59:59+02:00")
    assert len(day) == 23 and "2026-03-29T03:00:00+02:00" in day


def test_fall_back_a_repeated_wall_time_fires_at_both_instants() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    assert local_ticks("30 2 * * *", "2026-10-24T00:00:00+02:00", "2026-10-26T00:00:00+01:00") == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",
    ]
    day = local_ticks("0 * * * *", "2026-10-25T00:00:00+02:00", "2026-10-25T23:59:59+01:00")
    assert len(day) == 25


def record(catchup: str, **changes: object) -> ScheduleRecord:
    spec = ScheduleSpec("s", "wf", "*/5 * * * *", catchup=catchup, catchup_limit=3)  # type: ignore[arg-type]
    base = spec.record(now=parse_time("2026-12-03T10:00:00Z", "t"))
    return msgspec.structs.replace(base, **changes)


T = parse_time("2026-12-03T10:05:00Z", "t")  # the first tick after 10:00


@pytest.mark.parametrize(
    ("catchup", "now", "first", "cursor"),
    [
        # On time (0.5 s late): every policy fires the tick.
        ("skip", T + 0.5, T, T + 300),
        ("one", T + 0.5, T, T + 300),
        ("all", T + 0.5, T, T + 300),
        # Down from 10:04 to 10:31 (ticks 10:05 ... 10:30 missed, 10:30 one minute late).
        ("skip", T + 26 * 60 + 1, None, T + 1800),  # more than grace (60 s) late: none runs
        ("skip", T + 25 * 60 + 30, T + 1500, T + 1800),  # 10:30, 30 s late: runs
        ("one", T + 26 * 60, T + 1500, T + 1800),  # only the newest
        ("all", T + 26 * 60, T + 900, T + 1200),  # the newest 3: 10:20, then 10:25, 10:30
    ],
)
def test_catch_up_policies_after_downtime(
    catchup: str, now: float, first: float | None, cursor: float
) -> None:
    step = next_step(record(catchup), now)
    assert step is not None
    assert (step.tick, step.cursor) == (first, cursor)


def test_nothing_is_due_before_the_tick_or_while_paused() -> None:
    assert next_step(record("all"), T - 0.1) is None
    assert next_step(record("all", paused=True), T + 3600) is None


def test_a_held_tick_runs_however_late_and_then_the_policy_applies() -> None:
    # An hour late: the held 10:05 runs; 10:10 ... 11:00 are missed (skip), 11:05 is on time.
    step = next_step(record("skip", holding=True), T + 3600)
    assert step is not None and (step.tick, step.held, step.cursor) == (T, True, T + 3600)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"cron": "61 * * * *"}, "cron expression '61 * * * *' is not valid"),
        ({"cron": "every day"}, "5 fields"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"timezone": "europe/berlin"}, "did you mean 'Europe/Berlin'"),
        ({"catchup": "most"}, "unknown catchup policy 'most'"),
        ({"overlap": "never"}, "unknown overlap policy 'never'"),
        ({"catchup_limit": 0}, "catchup_limit must be"),
        ({"grace": -1}, "grace must be"),
    ],
)
def test_a_bad_declaration_says_what_where_and_how(changes: dict[str, object], says: str) -> None:
    fields: dict[str, object] = {"name": "nightly", "workflow": "wf", "cron": "0 3 * * *"}
    with pytest.raises(ScheduleError) as caught:
        ScheduleSpec(**{**fields, **changes})  # type: ignore[arg-type]
    assert says in str(caught.value) and "schedule 'nightly'" in str(caught.value)
