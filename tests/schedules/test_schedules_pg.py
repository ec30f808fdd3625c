"""Exactly one run per tick with three real worker processes on PostgreSQL, one of them
killed with SIGKILL while ticks keep coming: every tick from the first to the last has one
run, with that tick as its input, and none is missing."""

from __future__ import annotations

import asyncio
import calendar
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from procenv import Env, until

from durable._codec import decode_value
from sdk import App

WORKFLOWS = """
import os
from typing import Any
from sdk import App, Context

app = App(poll_interval=0.2)


@app.step()
async def note(run_id: str) -> None:
    with open(os.environ["TICK_EFFECTS"], "a") as out:
        out.write(f"{run_id} {os.getpid()}\\n")


@app.schedule("* * * * * *", name="beat", catchup="all", overlap="allow")
@app.workflow
async def beat(ctx: Context, tick: dict[str, Any]) -> str:
    await note(ctx.run_id)
    return str(tick["scheduled_at"])
"""


async def scheduled_runs(url: str) -> list[tuple[str, str, Any]]:
    """(run id, status, the input's scheduled_at) of every run of the schedule."""
    async with App(url, worker=False) as app:
        runs = await app.list_runs(workflow="beat", limit=10_000)
        found = []
        for r in runs:
            started = (await app.events(r.run_id))[0].event
            tick = getattr(started, "input", None)
            found.append((r.run_id, r.status, tick))
        return found


def test_three_workers_one_killed_fire_each_tick_exactly_once(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    env = Env(tmp_path, WORKFLOWS)
    env.db = pg_fresh_url
    effects = tmp_path / "effects.txt"
    os.environ["TICK_EFFECTS"] = str(effects)
    try:
        workers = [env.spawn("") for _ in range(3)]
        victim = workers[0]
        try:
            # Killed once it has fired ticks itself (it executes the runs it starts).
            until(lambda: effects.exists() and f" {victim.pid}\n" in effects.read_text(), 60)
            time.sleep(1.0)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.time()
            time.sleep(4.0)
        finally:
            for proc in workers[1:]:
                proc.send_signal(signal.SIGTERM)
            for proc in workers[1:]:
                proc.wait(timeout=30)
    finally:
        del os.environ["TICK_EFFECTS"]
    runs = asyncio.run(scheduled_runs(pg_fresh_url))
    ticks = Counter(rid.split("@", 1)[1] for rid, _, _ in runs)
    assert ticks and max(ticks.values()) == 1
    # The input holds the tick the run id names.
    inputs = Counter(decode_value(raw)["scheduled_at"] for _, _, raw in runs)
    assert inputs == ticks
    # Contiguous: not one tick lost, before or after the kill.
    seconds = sorted(calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) for t in ticks)
    assert seconds == [seconds[0] + i for i in range(len(seconds))]
    assert seconds[-1] >= killed_at + 3  # ticks kept coming after the kill
    assert seconds[0] < killed_at - 1
    # Every run's step body ran (at least once: a run the killed worker held ran again).
    lines = effects.read_text().split()
    assert set(lines[0::2]) >= {rid for rid, status, _ in runs if status == "succeeded"}
    assert sum(status == "succeeded" for _, status, _ in runs) >= len(runs) - 2
