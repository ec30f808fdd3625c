"""Cancelling a run while one of its steps runs JavaScript: the step is recorded cancelled, the
run ends cancelled, and the sandbox process that was running the JavaScript is killed.

The engine runs JavaScript for DAG steps (Python workflows have no JavaScript call of their own),
so the run is a DAG built in Python whose first step spins forever in the sandbox."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from durable import events as ev
from durable.js import _child
from sdk import App, RunCancelled

pytestmark = pytest.mark.asyncio

CHILD_SCRIPT = os.path.realpath(_child.__file__)


def sandbox_pids() -> list[int]:
    """The JavaScript sandboxes this process started: its children running _child.py."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and any(
            os.path.realpath(a.decode(errors="replace")) == CHILD_SCRIPT for a in argv if a
        ):
            found.append(int(entry))
    return sorted(found)


def cpu_ticks(pid: int) -> int:
    """CPU time used so far (user + system, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)


async def spinning(pids: list[int]) -> int:
    """The one sandbox burning CPU (the others are idle, blocked reading their stdin)."""
    before = {pid: cpu_ticks(pid) for pid in pids}
    await asyncio.sleep(0.5)
    used = {pid: cpu_ticks(pid) - before[pid] for pid in pids}
    busy = [pid for pid, ticks in used.items() if ticks >= 10]  # >= 0.1 s of CPU in 0.5 s
    assert len(busy) == 1, used
    return busy[0]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        # Killed and reaped: no process, not even a zombie, has that id.
        return not Path(f"/proc/{pid}").exists()
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
async def test_cancelling_a_run_kills_the_sandbox_running_its_javascript(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    entered = asyncio.Event()

    async def started() -> None:
        entered.set()

    flow = app.dag("spin", api={"started": started})

    @flow.do("spin", timeout=120)  # the cancellation, not the step's timeout, must stop it
    async def spin() -> None:
        """await started(); while (true) {}"""

    @flow.do("after", depends=[spin])
    async def after() -> None:
        """return 'never';"""

    earlier = set(sandbox_pids())  # none, unless an earlier test leaked some: not ours to judge
    async with app:
        handle = await app.start(flow, run_id="spin-1")
        # The JavaScript called back into this process: it is past `await started()`, in the loop.
        await asyncio.wait_for(entered.wait(), 30)
        pids = [pid for pid in sandbox_pids() if pid not in earlier]
        busy = await spinning(pids)
        began = time.monotonic()
        await app.cancel(handle.run_id, "enough spinning")
        with pytest.raises(RunCancelled, match="run 'spin-1' was cancelled"):
            await handle.result(20)
        assert time.monotonic() - began < 10
        for _ in range(100):  # 5 s at most
            if gone(busy):
                break
            await asyncio.sleep(0.05)
        assert gone(busy), f"sandbox {busy} still running after the cancellation"
        # Only the sandbox running the cancelled step was killed: the pool's others still serve.
        assert set(sandbox_pids()) - earlier == set(pids) - {busy}
        events = await app.events(handle.run_id)
        info = await app.get_run(handle.run_id)

    assert info.status == "cancelled"
    failed = [e.event for e in events if isinstance(e.event, ev.StepFailed)]
    assert [(f.error.type, f.retryable) for f in failed] == [("durable.Cancelled", False)]
    started_steps = [e.event.name for e in events if isinstance(e.event, ev.StepStarted)]
    assert started_steps == ["spin"]  # `after` never ran
    end = events[-1].event
    assert isinstance(end, ev.RunCancelled) and end.reason == "enough spinning"
    assert set(sandbox_pids()) - earlier == set()  # closing the app closed the rest of the pool
