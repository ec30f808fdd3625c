"""App's schedule methods: declaring cron schedules and controlling them (a mixin of App,
kept apart so that App stays one screenful of concerns)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from durable._errors import ScheduleError
from durable.schedules import Catchup, Overlap, ScheduleSpec
from durable.schedules._control import (
    ScheduleInfo,
    backfill,
    list_schedules,
    set_paused,
    trigger,
)

if TYPE_CHECKING:
    from durable._engine import Engine
    from durable.runtime._registry import Registry

W = TypeVar("W", bound=Callable[..., Any])


class ScheduleMethods:
    """Schedules of an App: `@app.schedule(cron)` on a workflow, `app.add_schedule(...)`."""

    _registry: Registry

    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # App's

    def schedule(
        self,
        cron: str,
        *,
        timezone: str = "UTC",
        name: str | None = None,
        catchup: Catchup = "one",
        catchup_limit: int = 100,
        grace: float = 60.0,
        overlap: Overlap = "skip",
    ) -> Callable[[W], W]:
        """Run the workflow below on a cron schedule (put it above @app.workflow). Each run
        gets its tick as input: {"schedule", "scheduled_at" (UTC, ISO 8601),
        "scheduled_at_local", "timezone", "manual"}; its run id is `<name>@<scheduled_at>`.
        See add_schedule for the policies."""

        def register(fn: W) -> W:
            try:
                workflow = self._registry.workflow(fn).name
            except LookupError:
                raise ScheduleError(
                    f"@app.schedule({cron!r}) is on {getattr(fn, '__name__', fn)!r}, which is "
                    "not a registered workflow; put @app.schedule(...) above @app.workflow"
                ) from None
            self.add_schedule(
                workflow,
                cron,
                timezone=timezone,
                name=name,
                catchup=catchup,
                catchup_limit=catchup_limit,
                grace=grace,
                overlap=overlap,
            )
            return fn

        return register

    def add_schedule(
        self,
        workflow: str | Callable[..., Any],
        cron: str,
        *,
        timezone: str = "UTC",
        name: str | None = None,
        catchup: Catchup = "one",
        catchup_limit: int = 100,
        grace: float = 60.0,
        overlap: Overlap = "skip",
    ) -> ScheduleSpec:
        """Run `workflow` (a name or a workflow function) on a cron schedule: 5 fields, or 6
        with seconds last, in `timezone` (IANA; DST as croniter defines it). `name` (default:
        the workflow's) identifies the schedule: its state (paused, last tick) lives in the
        database, shared by every worker, and exactly one run starts per tick.

        catchup, for ticks missed while no worker ran: "skip" those more than `grace`
        seconds late, run only the newest ("one"), or run them all ("all", the newest
        `catchup_limit` at most). overlap, when a tick comes while the previous run is
        unfinished: "skip" the tick, "queue" it until that run ends, "cancel_previous", or
        "allow" both."""
        wf = workflow if isinstance(workflow, str) else self._registry.workflow(workflow).name
        spec = ScheduleSpec(
            name=name or wf,
            workflow=wf,
            cron=cron,
            timezone=timezone,
            catchup=catchup,
            catchup_limit=catchup_limit,
            grace=grace,
            overlap=overlap,
        )
        existing = self._registry.schedules.get(spec.name)
        if existing is not None and existing != spec:
            raise ScheduleError(
                f"schedule {spec.name!r} is declared twice, differently; give one a name= "
                "of its own"
            )
        self._registry.schedules[spec.name] = spec
        return spec

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule in the database, with its next fire time."""
        return await list_schedules(self.engine.client)

    async def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop firing `name` (on every worker) until resumed."""
        return await set_paused(self.engine.client, name, True)

    async def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire `name` again from its next tick (ticks that fell due while paused are not
        run; backfill them if they should be)."""
        return await set_paused(self.engine.client, name, False)

    async def trigger_schedule(self, name: str) -> str:
        """Start a run of schedule `name` now (its id: `<name>@<now, to the ms>`)."""
        return await trigger(self.engine.client, name)

    async def backfill_schedule(self, name: str, start: str | float, end: str | float) -> list[str]:
        """Run every tick of `name` from `start` to `end` (included; ISO 8601 or Unix
        seconds) that has no run yet; returns the ticks' run ids."""
        return await backfill(self.engine.client, name, start, end)
