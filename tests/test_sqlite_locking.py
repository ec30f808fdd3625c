"""Another process holding SQLite's write lock: runs wait for it, the event loop does not, reading
commands never do, and a command that must write says that it waits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
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


# ------------------------------------------------------------------ the CLI and a held lock

HOLD_UNTIL_STDIN_CLOSES = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("COMMIT")
"""


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the file's write lock (BEGIN IMMEDIATE) until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_STDIN_CLOSES, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
        assert holder.poll() is None, "the lock holder ended early: the test proved nothing"
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(10)


def durable_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args], capture_output=True, text=True, timeout=120
    )


async def pending_run(path: Path) -> str:
    """A database with one run nobody executes (no worker): pending, two events."""
    app = App(f"sqlite:///{path}", worker=False)

    @app.workflow()
    async def idle(ctx: Context) -> None:
        await ctx.wait_for_signal("go")

    async with app:
        handle = await app.start(idle, run_id="idle-run")
    return handle.run_id


def cli_start_seconds(path: Path) -> float:
    """How long a reading command takes here with no lock held (interpreter start included)."""
    started = time.monotonic()
    done = durable_cli("runs", "list", "--db", str(path))
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


def test_reading_commands_answer_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.db"
    run_id = asyncio.run(pending_run(path))
    unlocked = cli_start_seconds(path)
    with write_lock_held(path):
        for args in (["runs", "list"], ["runs", "show", run_id], ["events", run_id]):
            started = time.monotonic()
            done = durable_cli(*args, "--json", "--db", str(path))
            took = time.monotonic() - started
            assert done.returncode == 0, (args, done.stderr)
            assert run_id in done.stdout or '"RunStarted"' in done.stdout, done.stdout
            assert done.stderr == ""  # nothing to wait for, nothing said
            assert took < unlocked + 3.0, f"{args} took {took:.1f}s (unlocked: {unlocked:.1f}s)"


def test_cancel_says_it_waits_for_the_lock_then_goes_through(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    run_id = asyncio.run(pending_run(path))
    unlocked = cli_start_seconds(path)
    with write_lock_held(path):
        started = time.monotonic()
        cancel = subprocess.Popen(
            [sys.executable, "-m", "durable", "cancel", run_id, "--db", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert cancel.stderr is not None
        line = cancel.stderr.readline()  # the lock is held: the command can only wait
        said_after = time.monotonic() - started
        assert line.startswith("waiting for the database write lock held by another process (")
        assert str(path) in line
        # About a second after the command got going, not at the end of some timeout.
        assert said_after < unlocked + 2.5, f"said after {said_after:.1f}s"
        assert cancel.poll() is None  # still waiting, as it said
    out, err = cancel.communicate(timeout=60)  # the lock is free now: the cancel is made
    assert cancel.returncode == 0, err
    assert f"cancellation of run {run_id} requested" in out
    assert err == ""
    with sqlite3.connect(path) as conn:
        sent = conn.execute("SELECT run_id, kind FROM durable_inbox").fetchall()
    assert sent == [(run_id, "cancel")]


def test_a_write_that_waits_too_long_ends_with_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    run_id = asyncio.run(pending_run(path))
    with write_lock_held(path):
        done = durable_cli("cancel", run_id, "--db", f"sqlite:///{path}?lock_timeout=2")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith("waiting for the database write lock held by another process")
    assert lines[1].startswith("error: gave up waiting for the write lock of SQLite database")
    assert "nothing was written" in lines[1] and "lock_timeout" in lines[1]
    assert len(lines) == 2  # no traceback
    assert "Traceback" not in done.stderr
