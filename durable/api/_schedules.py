"""/schedules: the cron schedules in the database, with their next fire times; pause, resume,
trigger and backfill (admin token when tokens are configured, as for every write: _auth)."""

from __future__ import annotations

from litestar import get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from durable.schedules._control import (
    ScheduleInfo,
    backfill,
    get_schedule,
    info,
    list_schedules,
    set_paused,
    trigger,
)
from durable.schedules._cron import parse_time

from ._responses import WITH_BODY, errors
from ._schemas import (
    BackfillRequest,
    BackfillResponse,
    ScheduleBody,
    ScheduleList,
    TriggerResponse,
)
from ._services import Services
from ._shapes import ms

Name = Parameter(
    min_length=1, max_length=255, pattern=r"^[^\x00]+$", description="The schedule's name."
)


def _ms(text: str | None) -> int | None:
    return None if text is None else ms(parse_time(text, "stored time"))


def schedule_body(s: ScheduleInfo) -> ScheduleBody:
    return ScheduleBody(
        name=s.name,
        workflow=s.workflow,
        cron=s.cron,
        timezone=s.timezone,
        catchup=s.catchup,
        catchup_limit=s.catchup_limit,
        grace_ms=ms(s.grace) or 0,
        overlap=s.overlap,
        paused=s.paused,
        next_run_at=_ms(s.next_run),
        waiting_for_previous=s.waiting_for_previous,
        last_tick_at=_ms(s.last_tick),
        last_run_id=s.last_run_id,
    )


@get("/schedules", summary="List the cron schedules with their next fire times")
async def list_all(services: Services) -> ScheduleList:
    """By name. A schedule is listed once a process declaring it (@app.schedule,
    app.add_schedule, `schedule:` in a definition) has opened the database."""
    return ScheduleList(schedules=[schedule_body(s) for s in await list_schedules(services.client)])


@get("/schedules/{name:str}", summary="One cron schedule", responses=errors(404))
async def get_one(services: Services, name: str = Name) -> ScheduleBody:
    return schedule_body(info(await get_schedule(services.client, name)))


@post(
    "/schedules/{name:str}/pause",
    status_code=HTTP_200_OK,
    summary="Pause a schedule (on every worker)",
    responses=errors(404),
)
async def pause(services: Services, name: str = Name) -> ScheduleBody:
    return schedule_body(await set_paused(services.client, name, True))


@post(
    "/schedules/{name:str}/resume",
    status_code=HTTP_200_OK,
    summary="Resume a schedule from its next tick",
    responses=errors(404),
)
async def resume(services: Services, name: str = Name) -> ScheduleBody:
    """Ticks that fell due while it was paused are not run (backfill them if they should be)."""
    return schedule_body(await set_paused(services.client, name, False))


@post(
    "/schedules/{name:str}/trigger",
    status_code=HTTP_202_ACCEPTED,
    summary="Start a run of the schedule now",
    responses=errors(404),
)
async def trigger_now(services: Services, name: str = Name) -> TriggerResponse:
    """Its input's scheduled_at is now (to the millisecond), and so is its id."""
    return TriggerResponse(execution_id=await trigger(services.client, name))


@post(
    "/schedules/{name:str}/backfill",
    status_code=HTTP_202_ACCEPTED,
    summary="Run every tick of a time range",
    responses=errors(400, 404, *WITH_BODY),
)
async def backfill_range(
    services: Services, data: BackfillRequest, name: str = Name
) -> BackfillResponse:
    """Every tick from start to end (included) that has no run yet is started; the response
    lists the ids of all the range's ticks, oldest first (at most 1,000: 400 beyond)."""
    ids = await backfill(services.client, name, data.start, data.end)
    return BackfillResponse(execution_ids=ids)
