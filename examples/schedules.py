"""Cron schedules: a nightly report in Berlin time, and a heartbeat every 2 seconds.

    python examples/schedules.py      # runs a worker for 5 s: heartbeats fire, one run per tick

Every worker that has this app fires its schedules; exactly one run starts per tick however
many workers there are (the run id is the schedule and the tick: heartbeat@2026-12-03T10:05:02Z).
Each run gets its tick as input. Control them with `durable schedules ...` (README.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sdk import App, Context

app = App("sqlite:///schedules.db", poll_interval=0.2)


@app.step()
async def build_report(day: str) -> str:
    return f"report for the day before {day}"


# 03:00 Berlin time, CET or CEST as the date says (the DST rules are croniter's). After
# downtime, run every missed night (up to 7); a night whose previous run is still going waits.
@app.schedule(
    "0 3 * * *", timezone="Europe/Berlin", catchup="all", catchup_limit=7, overlap="queue"
)
@app.workflow
async def nightly_report(ctx: Context, tick: dict[str, Any]) -> str:
    return await build_report(tick["scheduled_at_local"][:10])


@app.workflow
async def heartbeat(ctx: Context, tick: dict[str, Any]) -> str:
    return f"alive at {tick['scheduled_at']}"


# A 6th field is seconds: every 2 seconds. Missed beats are skipped (no catch-up storm).
app.add_schedule(heartbeat, "*/2 * * * * *", catchup="skip", grace=5.0)


async def main() -> None:
    async with app:
        await asyncio.sleep(5)
        for s in await app.list_schedules():
            print(f"{s.name:15} {s.cron:15} next run {s.next_run} (last: {s.last_run_id})")


if __name__ == "__main__":
    asyncio.run(main())
