"""A step that kills its own worker process fails after max_crashes deaths; nothing else stops.

Real processes: each worker runs the `boom` step, which SIGKILLs the process it runs in; the
test restarts a worker each time, as a supervisor would, until the run has ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from durable import events as ev
from sdk import App

CHILD = Path(__file__).with_name("crash_loop_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _worker(db: Path, limit: str, *run_ids: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.run(
        [sys.executable, str(CHILD), f"sqlite:///{db}", limit, *run_ids],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _restart_until_done(db: Path, limit: str, run_id: str, most: int) -> tuple[int, str]:
    """Run workers until one exits by itself: (how many were SIGKILLed, its output)."""
    for deaths in range(most + 1):
        done = _worker(db, limit, run_id)
        if done.returncode == -signal.SIGKILL:
            continue
        assert done.returncode == 0, done.stderr[-3000:]
        return deaths, done.stdout
    raise AssertionError(f"{run_id} still crash-looping after {most + 1} worker processes")


def _events(db: Path, run_id: str) -> list[object]:
    import asyncio

    async def read() -> list[object]:
        async with App(f"sqlite:///{db}", worker=False) as app:
            return [e.event for e in await app.events(run_id)]

    return asyncio.run(read())


@pytest.mark.parametrize(("limit", "expected"), [("3", 3), ("app-default", 10)])
def test_a_step_that_kills_its_process_fails_after_max_crashes(
    tmp_path: Path, limit: str, expected: int
) -> None:
    db = tmp_path / "loop.db"
    deaths, out = _restart_until_done(db, limit, "bomb-1", most=expected + 2)
    # Every death was counted: the guard ends the run on the next start, not later.
    assert deaths == expected
    assert out.startswith("failed bomb-1="), out
    assert "durable.StepInterrupted" in out
    assert "step 'boom'" in out and f"{expected} times" in out
    assert f"max_crashes={expected}" in out
    events = _events(db, "bomb-1")
    starts = [e for e in events if isinstance(e, ev.StepStarted) and e.name == "boom"]
    assert len(starts) == expected
    assert isinstance(events[-1], ev.RunFailed)
    # Another run in the same database, by a fresh worker, completes.
    calm = _worker(db, limit, "calm-1")
    assert calm.returncode == 0, calm.stderr[-3000:]
    assert calm.stdout.strip() == "succeeded calm-1=42"


def test_a_dag_step_that_kills_its_process_fails_after_the_apps_max_step_crashes(
    tmp_path: Path,
) -> None:
    """App(max_step_crashes=N) is the limit of DAG steps too (a `function:` step here)."""
    db = tmp_path / "loop.db"
    deaths, out = _restart_until_done(db, "2", "dag-1", most=12)
    assert deaths == 2
    assert out.startswith("failed dag-1="), out
    events = _events(db, "dag-1")
    failed = [e for e in events if isinstance(e, ev.StepFailed)]
    assert len(failed) == 1 and failed[0].error.type == "durable.StepInterrupted"
    assert "step 'boom'" in failed[0].error.message
    assert "max_crashes=2" in failed[0].error.message


@pytest.mark.parametrize(
    ("run_id", "step", "error"),
    [
        ("flow-1", "boom", "durable.flow.WorkflowFailedError: workflow 'crashflow' failed"),
        ("agent-1", "bomber.tool.boom", "durable.StepFailed: step 'bomber.tool.boom'"),
    ],
)
def test_builder_and_agent_steps_that_kill_their_process_fail_after_max_step_crashes(
    tmp_path: Path, run_id: str, step: str, error: str
) -> None:
    """The guard behind every other kind of step: a builder workflow's tool step and a
    durable agent's tool call, each a body that SIGKILLs its worker, with App(max_step_crashes=2)
    (the limit would be 10 if it did not reach them, and never if the guard were off)."""
    db = tmp_path / "loop.db"
    deaths, out = _restart_until_done(db, "2", run_id, most=12)
    # The tool call starts after the model request's outcome was committed in the same
    # execution: its StepStarted may then ride with its own outcome's commit (see
    # _step_runner), which the first death never makes; that one death can go uncounted.
    assert deaths == 2 or (run_id.startswith("agent") and deaths == 3), deaths
    assert out.startswith(f"failed {run_id}=run {run_id!r} failed: {error}"), out
    events = _events(db, run_id)
    starts = [e for e in events if isinstance(e, ev.StepStarted) and e.name == step]
    assert len(starts) == 2
    failed = [e for e in events if isinstance(e, ev.StepFailed)]
    assert len(failed) == 1 and failed[0].error.type == "durable.StepInterrupted"
    assert f"step {step!r} crashed its worker process 2 times" in failed[0].error.message
    assert "max_crashes=2" in failed[0].error.message
    assert isinstance(events[-1], ev.RunFailed)


def test_max_crashes_is_checked() -> None:
    with pytest.raises(ValueError, match=r"App max_step_crashes must be an int >= 1, got 0"):
        App("sqlite:///:memory:", max_step_crashes=0)
    app = App("sqlite:///:memory:")
    with pytest.raises(ValueError, match=r"step 'f': max_crashes must be an int >= 1"):

        @app.step(max_crashes=-1)
        async def f() -> None:
            pass

    @app.step(max_crashes=4)
    async def g() -> None:
        pass

    assert g.definition.max_crashes == 4
