"""A real worker process is SIGKILLed while its durable agent waits for a human's approval
(parked, or still holding the run); the decision is sent while no worker runs, and a new
worker finishes the run. The model is called once per recorded response, the approved tool
runs once, and the log replays."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from durable import RunNotFoundError, replay
from durable import events as ev
from sdk import App

CHILD = Path(__file__).with_name("approval_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _spawn(db: Path, workdir: Path, park_after: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen(
        [sys.executable, str(CHILD), f"sqlite:///{db}", str(workdir), "c1", str(park_after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def _pending(url: str) -> list[str]:
    async with App(url, worker=False) as reader:
        try:
            return [a.tool_call_id for a in await reader.approvals("c1") if not a.decided]
        except RunNotFoundError:  # not started yet
            return []


@pytest.mark.parametrize("park_after", [0.1, 60.0], ids=["parked", "held"])
def test_a_worker_killed_while_waiting_for_approval(tmp_path: Path, park_after: float) -> None:
    db, url = tmp_path / "approval.db", f"sqlite:///{tmp_path / 'approval.db'}"
    first = _spawn(db, tmp_path, park_after)
    try:
        deadline = time.monotonic() + 60
        while not (db.exists() and asyncio.run(_pending(url)) == ["del-1"]):
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the approval request never appeared"
            time.sleep(0.1)
        time.sleep(0.5)  # parked by now (park_after=0.1), or still held (60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    first_pid = str(first.pid)

    async def approve() -> None:
        async with App(url, worker=False) as deciding:
            decided = await deciding.approve("c1", "del-1", reason="old files")
            assert decided.status == "approved"

    asyncio.run(approve())

    second = _spawn(db, tmp_path, park_after)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    assert out.strip() == "done: deleted /srv/old"

    model_calls = _lines(tmp_path / "model_calls")
    # The first response (asking for the tool) was recorded before the crash: not asked again.
    assert model_calls == [["1", first_pid], ["2", str(second.pid)]]
    assert _lines(tmp_path / "tool_calls") == [["delete", str(second.pid)]]

    async def check() -> None:
        import approval_child

        app = approval_child.build(url, tmp_path)
        async with App(url, worker=False) as reader:
            events = await reader.events("c1")
            [approval] = await reader.approvals("c1")
        assert approval.status == "approved" and approval.reason == "old files"
        assert sum(isinstance(e.event, ev.SignalReceived) for e in events) == 1
        assert (await replay("c1", events, app.registry)).deterministic

    sys.path.insert(0, str(CHILD.parent))
    try:
        asyncio.run(check())
    finally:
        sys.path.remove(str(CHILD.parent))
