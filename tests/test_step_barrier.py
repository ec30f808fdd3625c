"""The durability barrier before a step body, seen from inside the body.

A step body that starts before its StepStarted is committed can kill the process without the
crash-loop guard ever counting that start (tests/crash/test_crash_loop.py shows the guard from
outside, by killing real processes). A body that starts before the results it follows are
committed can act on a result a crash would then recompute differently.

Here each body reads the database file through a connection of its own, which sees committed
rows only, and it reads synchronously, in the event loop's thread, before its first await: no
write-behind flush can slip in between the body starting and the read, so what it sees is
exactly what was committed when it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from sdk import App, Context


def committed(path: Path, run_id: str) -> list[str]:
    """The types of the run's committed events, in order."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT type FROM durable_events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [t for (t,) in rows]


def build(path: Path, seen: dict[str, list[list[str]]], gate: asyncio.Event) -> App:
    app = App(f"sqlite:///{path}", poll_interval=0.05, lease_ttl=2.0)

    @app.step()
    async def first() -> int:
        seen["first"].append(committed(path, "r"))  # before any await: see the module doc
        return 1

    @app.step()
    async def second(n: int) -> int:
        seen["second"].append(committed(path, "r"))
        await gate.wait()
        return n + 1

    @app.workflow(name="pair")
    async def pair(ctx: Context) -> int:
        return await second(await first())

    return app


async def test_the_first_step_body_of_each_execution_starts_after_its_start_is_committed(
    tmp_path: Path,
) -> None:
    """Execution 1: `first` is the first attempt of the execution, so its StepStarted is
    committed before its body runs; `second` follows a result, which is committed before it.
    The process then stops with `second` mid-attempt. Execution 2 (a new App, as after a
    restart): `first` is replayed, `second` runs again as an interrupted attempt, and its new
    StepStarted is committed before the body runs."""
    path = tmp_path / "barrier.db"
    seen: dict[str, list[list[str]]] = {"first": [], "second": []}
    gate = asyncio.Event()  # never set in execution 1: the attempt is cut short
    async with build(path, seen, gate) as app:
        await app.start("pair", run_id="r")
        for _ in range(500):
            if seen["second"]:
                break
            await asyncio.sleep(0.01)
    assert seen["first"] == [["RunStarted", "StepStarted"]]
    [at_second] = seen["second"]
    # first's result, committed before second ran (second's own start may ride along: exempt).
    assert at_second[:3] == ["RunStarted", "StepStarted", "StepCompleted"], at_second
    assert committed(path, "r")[-1] == "StepStarted"  # second's attempt: started, no outcome

    gate = asyncio.Event()
    gate.set()
    async with build(path, seen, gate) as app:
        assert await app.handle("r").result(timeout=20) == 2
    assert len(seen["first"]) == 1  # replayed, not run again
    assert seen["second"][1] == [
        "RunStarted",
        "StepStarted",
        "StepCompleted",
        "StepStarted",  # execution 1's attempt of second
        "StepStarted",  # this attempt's: committed before the body ran
    ]
    assert committed(path, "r")[-2:] == ["StepCompleted", "RunCompleted"]
