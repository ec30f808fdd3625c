"""Another process holding SQLite's write lock: runs wait for it, the event loop does not."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import sys
import time
from pathlib import Path

from sdk import App, Context

HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


async def test_a_foreign_write_lock_neither_fails_runs_nor_blocks_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    app = App(f"sqlite:///{path}", poll_interval=0.05)

    @app.step()
    async def one(i: int) -> int:
        return i

    @app.workflow()
    async def wf(ctx: Context, n: int) -> int:
        total = 0
        for i in range(n):
            total += await one(i)
        return total

    async with app:
        assert await app.run(wf, 3) == 3  # the store is open and warm
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLD, str(path), "1.0", stdout=asyncio.subprocess.PIPE
        )
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        started = time.monotonic()
        result = await app.run(wf, 5, timeout=30)
        elapsed = time.monotonic() - started
        tick_task.cancel()
        assert await asyncio.wait_for(holder.wait(), 10) == 0
    assert result == 10
    assert elapsed >= 0.5  # it really waited for the other process's lock
    # The loop kept turning while the lock was held: no gap anywhere near the lock's 1 s.
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25, f"event loop stalled for {max(gaps):.3f}s"
    with sqlite3.connect(path) as conn:
        (status,) = conn.execute(
            "SELECT status FROM durable_runs ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    assert status == "succeeded"
