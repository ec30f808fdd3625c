"""A real worker process running a durable agent is SIGKILLed between two model responses; a
new worker finishes the run. The model is called exactly once per recorded response, and each
tool (one of them with a side effect) exactly once: the restarted agent resumes from the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from durable import events as ev
from durable import replay
from sdk import App

CHILD = Path(__file__).with_name("agent_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _worker(db: Path, workdir: Path, run_id: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run(
        [sys.executable, str(CHILD), f"sqlite:///{db}", str(workdir), run_id],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def _events_and_replay(db: Path, workdir: Path, run_id: str) -> tuple[list[Any], bool]:
    sys.path.insert(0, str(CHILD.parent))
    try:
        import agent_child
    finally:
        sys.path.remove(str(CHILD.parent))

    async def read() -> tuple[list[Any], bool]:
        app = agent_child.build(f"sqlite:///{db}", workdir)
        async with App(f"sqlite:///{db}", worker=False) as reader:
            events = await reader.events(run_id)
        report = await replay(run_id, events, app.registry)
        return [e.event for e in events], report.deterministic

    return asyncio.run(read())


@pytest.mark.parametrize("kill_at", [2, 3])
def test_a_worker_killed_between_model_responses(tmp_path: Path, kill_at: int) -> None:
    db, workdir = tmp_path / "agent.db", tmp_path
    (workdir / "KILL_AT").write_text(str(kill_at))
    (workdir / "KILL_MARKER").touch()

    first = _worker(db, workdir, "evening-1")
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    first_pid = {pid for _, pid in _lines(workdir / "model_calls")}
    # It died at the start of model request `kill_at`: the responses before it were recorded.
    assert [n for n, _ in _lines(workdir / "model_calls")] == [str(n) for n in range(1, kill_at)]

    second = _worker(db, workdir, "evening-1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.strip() == "Sunny; table booked."

    model_calls = _lines(workdir / "model_calls")
    tool_calls = _lines(workdir / "tool_calls")
    # Exactly one model call per recorded response, and the restarted worker made only those
    # the first one had not recorded.
    assert [n for n, _ in model_calls] == ["1", "2", "3"]
    assert [pid in first_pid for _, pid in model_calls] == [n < kill_at for n in (1, 2, 3)]
    # Each tool once, the booking (a side effect) included.
    assert [name for name, _ in tool_calls] == ["get_weather", "book_table"]

    events, deterministic = _events_and_replay(db, workdir, "evening-1")
    names = {e.pos: e.name for e in events if isinstance(e, ev.StepStarted)}
    completed = [names[e.pos] for e in events if isinstance(e, ev.StepCompleted)]
    assert completed == [
        "concierge.model_request",
        "concierge.tool.get_weather",
        "concierge.model_request",
        "concierge.tool.book_table",
        "concierge.model_request",
    ]
    assert not any(isinstance(e, ev.StepFailed) for e in events)
    assert isinstance(events[-1], ev.RunCompleted)
    # The token usage of each request is in its step's result.
    usages = [
        msgspec.msgpack.decode(e.result)["usage"]
        for e in events
        if isinstance(e, ev.StepCompleted) and names[e.pos] == "concierge.model_request"
    ]
    assert [u["input_tokens"] for u in usages] == [10, 20, 30]
    assert deterministic
