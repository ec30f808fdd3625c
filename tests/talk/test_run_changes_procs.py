"""PostgreSQL per-run notifications between processes: with every poll set to 30 s, only the
changes channel can explain a signal handled, and a Client.wait() in a third process
answered, within a second or two."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sdk import App

POLL = 30.0  # the worker's claim and inbox polls, and the waiting client's

WORKFLOWS = """
import asyncio
from sdk import App, Context

app = App(poll_interval=30)


@app.step()
async def slow() -> str:
    await asyncio.sleep(60)
    return "slow"


@app.workflow
async def held(ctx: Context, x: int) -> int:
    # A step in flight keeps the run executing (held, not parked): the signal must reach the
    # worker's inbox loop, whose poll is 30 s.
    slow_step = asyncio.ensure_future(slow())
    signal = asyncio.ensure_future(ctx.wait_for_signal("go"))
    done, _ = await ctx.wait([slow_step, signal])
    return x + (await signal if signal in done else 0)
"""

WAITER = """
import asyncio, sys, time
from sdk import App

async def main() -> None:
    async with App(sys.argv[1], worker=False) as app:
        app.engine.client.poll_interval = 30.0
        print("waiting", flush=True)
        outcome = await app.engine.client.wait(sys.argv[2])
        print(outcome.status, time.time(), flush=True)

asyncio.run(main())
"""


def _spawn(args: list[str], workdir: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(workdir), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


async def test_signal_and_wait_across_processes_at_commit(
    tmp_path: Path, pg_fresh_url: str
) -> None:
    (tmp_path / "wfmod.py").write_text(textwrap.dedent(WORKFLOWS))
    (tmp_path / "waiter.py").write_text(textwrap.dedent(WAITER))
    worker = _spawn(
        ["-m", "durable", "worker", "wfmod:app", "--db", pg_fresh_url,
         "--poll-interval", str(POLL), "--log-level", "warning"],
        tmp_path,
    )  # fmt: skip
    waiter: subprocess.Popen[str] | None = None
    try:
        assert "durable worker" in _line(worker, 30)
        module: dict[str, object] = {}
        exec(compile(WORKFLOWS, "wfmod.py", "exec"), module)  # the same workflows, to start
        async with App(pg_fresh_url, worker=False) as app:
            app.registry._workflows.update(module["app"].registry._workflows)  # type: ignore[attr-defined]
            app.engine.client.poll_interval = POLL
            handle = await app.start("held", 1)
            run_id = handle.run_id

            async def waiting() -> bool:
                events = await app.events(run_id)
                return any(type(e.event).__name__ == "WaitStarted" for e in events)

            deadline = time.monotonic() + 20
            while not await waiting():
                assert time.monotonic() < deadline, "the run never started waiting"
                await asyncio.sleep(0.05)
            waiter = _spawn(["waiter.py", pg_fresh_url, run_id], tmp_path)
            assert _line(waiter, 30).strip() == "waiting"
            # Let the waiter's backoff grow past a second: from then on, a poll alone would
            # answer it late.
            await asyncio.sleep(3.0)
            sent = time.time()
            await app.signal(run_id, "go", 41)
            assert (await handle.result()) == 42  # this process's wait: woken at commit too
            answered = time.time()
            record = await app.engine.store.get_run(run_id)
            assert record is not None and record.finished_at is not None
            # The worker saw the signal at once (its inbox poll is 30 s) ...
            assert record.finished_at - sent < 2.0, record.finished_at - sent
            assert answered - record.finished_at < 1.0
            # ... and the other process's Client.wait() was woken by the run's end.
            status, at = _line(waiter, 10).split()
            assert status == "succeeded"
            assert float(at) - record.finished_at < 1.0, float(at) - record.finished_at
    finally:
        for proc in (worker, waiter):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=30)
                if proc.stdout is not None:
                    proc.stdout.close()
