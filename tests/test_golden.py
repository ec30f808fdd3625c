"""Golden histories: runs recorded by an earlier version (tests/golden/*.json, written by
tests/golden/regenerate.py) must replay cleanly against the current engine and code, and a
changed workflow must be caught at the right position."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from golden.workflows import GOLDEN_RUNS, make_app

from durable import replay
from durable._events import (
    ChildCompleted,
    ChildStarted,
    MarkerRecorded,
    RunContinued,
    RunStarted,
    SelectCompleted,
    SelectStarted,
    SignalReceived,
    StepFailed,
    TimerFired,
    TimerStarted,
    WaitCompleted,
    WaitStarted,
)
from durable._history import HistoryFile, read
from durable._state import fold

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
FILES = sorted(GOLDEN.glob("*.json"))
WORKFLOWS = GOLDEN / "workflows.py"


def golden(name: str) -> HistoryFile:
    return read(GOLDEN / f"{name}.json")


def line_of(text: str) -> int:
    """The line of workflows.py holding `text`; the variant's branch comes first in the file."""
    lines = WORKFLOWS.read_text().splitlines()
    found = [i + 1 for i, line in enumerate(lines) if text in line]
    assert found, text
    return found[0]


def test_there_is_one_golden_file_per_golden_run() -> None:
    # ... and one per child run a golden run started (regenerate.py exports them too).
    children = [
        e.event.run_id for f in FILES for e in read(f).logged() if isinstance(e.event, ChildStarted)
    ]
    expected = sorted(r.removeprefix("golden-") for r in [*GOLDEN_RUNS, *children])
    assert sorted(f.stem for f in FILES) == expected
    assert children == ["golden-children.0", "golden-children.1"]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
async def test_every_golden_history_replays_cleanly(path: Path) -> None:
    history = read(path)
    events = history.logged()
    report = await replay(history.run.run_id, events, make_app().registry)
    assert report.deterministic, report.divergence
    # Every run succeeded, but the child run that failed on purpose (children.1) and the
    # queued run cancelled while it waited (waitcancel), whose code asks for a step its log
    # never reached, as any run cancelled before its first step.
    expected = {"children.1": "failed", "waitcancel": "cancelled"}.get(path.stem, "succeeded")
    assert report.status == history.run.status == expected
    assert report.reached_end_of_history == (expected == "cancelled")
    # Every event up to the run's last, from the first one kept (1 unless it continued as new).
    assert report.events == len(events) == history.run.last_seq - events[0].seq + 1


def test_the_golden_files_cover_what_they_claim() -> None:
    retries = fold("r", golden("retries").logged())
    assert (retries.steps[0].status, retries.steps[0].attempts) == ("succeeded", 3)
    failures = [e.event for e in golden("retries").logged() if isinstance(e.event, StepFailed)]
    assert [(f.attempt, f.retryable) for f in failures] == [(1, True), (2, True)]

    caught = golden("caught").logged()
    failed = [e.event for e in caught if isinstance(e.event, StepFailed)]
    assert len(failed) == 1 and not failed[0].retryable
    assert fold("c", caught).status == "succeeded"  # the workflow handled the failure

    markers = golden("markers").logged()
    assert [e.event.kind for e in markers if isinstance(e.event, MarkerRecorded)] == [
        "now",
        "random",
        "uuid4",
    ]

    fanout = fold("f", golden("fanout").logged())
    gathered = [fanout.steps[p] for p in (0, 1, 2)]
    assert {s.name for s in gathered} == {"slow_square"}
    # asyncio.gather: every one of the three started before any of them finished.
    assert max(s.started_at or 0 for s in gathered) < min(s.finished_at or 0 for s in gathered)


def test_the_golden_waiting_cancel_covers_what_it_claims() -> None:
    """A queued run cancelled while it waited (durable.queues._cancel): RunStarted, then the
    request and the end in one commit, nothing run; it folds as a cancelled run."""
    logged = golden("waitcancel").logged()
    assert [e.type for e in logged] == ["RunStarted", "CancelRequested", "RunCancelled"]
    assert logged[1].at == logged[2].at
    state = fold("w", logged)
    assert (state.status, state.cancel_requested, state.cancel_reason) == (
        "cancelled",
        True,
        "not needed",
    )
    assert state.steps == {}


def test_the_golden_waits_cover_what_they_claim() -> None:
    timer = golden("timer").logged()
    started = [(e.seq, e.event) for e in timer if isinstance(e.event, TimerStarted)]
    fired = [(e.at, e.event) for e in timer if isinstance(e.event, TimerFired)]
    assert [s.pos for _, s in started] == [f.pos for _, f in fired] == [1]
    assert fired[0][0] >= started[0][1].fire_at  # it fired on time, never early

    signals = golden("signals").logged()
    received = [e.seq for e in signals if isinstance(e.event, SignalReceived)]
    waits = [e.seq for e in signals if isinstance(e.event, WaitStarted)]
    assert len(received) == 2 and len(waits) == 3
    # The first signal arrived before any wait started; the second while the second waited.
    assert received[0] < waits[0] and waits[1] < received[1] < waits[2]
    done = [e.event for e in signals if isinstance(e.event, WaitCompleted)]
    assert [(d.pos, d.signal_seq) for d in done] == [(1, received[0]), (2, received[1]), (3, 0)]
    timed = next(e.event for e in signals if isinstance(e.event, WaitStarted) and e.event.pos == 3)
    assert timed.deadline is not None  # the third wait had a timeout, and it ran out

    parent = golden("children").logged()
    children = [e.event for e in parent if isinstance(e.event, ChildStarted)]
    assert [(c.pos, c.workflow) for c in children] == [(0, "square"), (1, "square")]
    ends = [e.event for e in parent if isinstance(e.event, ChildCompleted)]
    assert [(c.run_id, c.status) for c in ends] == [
        (children[0].run_id, "succeeded"),
        (children[1].run_id, "failed"),
    ]
    assert ends[1].error is not None and ends[1].error.type == "ValueError"
    assert fold("p", parent).status == "succeeded"  # the parent caught ChildRunFailed
    for child, end in zip(children, ends, strict=True):
        history = golden(child.run_id.removeprefix("golden-"))
        assert history.run.run_id == child.run_id and history.run.status == end.status
        assert fold(child.run_id, history.logged()).parent_run_id == "golden-children"

    patched = golden("patched").logged()
    markers = [e.event for e in patched if isinstance(e.event, MarkerRecorded)]
    assert [(m.pos, m.kind) for m in markers] == [(0, "patch")]


def test_the_golden_selects_cover_what_they_claim() -> None:
    select = golden("select").logged()
    started = [e.event for e in select if isinstance(e.event, SelectStarted)]
    ended = [(e.seq, e.event) for e in select if isinstance(e.event, SelectCompleted)]
    assert [(s.pos, s.count) for s in started] == [(2, 2), (4, 1), (8, 3), (9, 1)]
    assert started[1].deadline is not None and ended[1][1].timed_out and ended[1][1].done == []
    # The as_completed turn that found two steps done recorded them in completion order, and
    # the third (slow) step completed only after that select had returned.
    assert ended[2][1].done == [1, 2]
    slow = next(
        e.seq for e in select if getattr(e.event, "pos", None) == 5 and e.type == "StepCompleted"
    )
    assert ended[2][0] < slow
    assert fold("s", select).status == "succeeded"


def test_the_golden_continuation_covers_what_it_claims() -> None:
    """ctx.continue_as_new() twice: the file keeps histories 1 and 2 (history 0 trimmed),
    each opened by a RunStarted that continues the run; the signal, received in history 1 (it
    arrived after history 0 had continued), carried into history 2 (inbox id 0) and consumed
    there; history 1 closed by a RunContinued."""
    continued = golden("continued").logged()
    assert continued[0].seq > 1
    starts = [e.event for e in continued if isinstance(e.event, RunStarted)]
    assert [s.continuation.generation if s.continuation else 0 for s in starts] == [1, 2]
    assert [e.event.generation for e in continued if isinstance(e.event, RunContinued)] == [2]
    carried = [e.event for e in continued if isinstance(e.event, SignalReceived)]
    assert [(c.name, c.inbox_id > 0) for c in carried] == [("extra", True), ("extra", False)]
    state = fold("c", continued)
    assert (state.status, state.generation) == ("succeeded", 2)


async def test_a_patch_removed_the_documented_way_still_replays() -> None:
    # README: once no run from before the patch is left, ctx.patched() becomes
    # ctx.deprecate_patch() and the old branch goes; runs that recorded the patch replay as is.
    history = golden("patched")
    report = await replay(
        history.run.run_id, history.logged(), make_app(variant="deprecated").registry
    )
    assert report.deterministic, report.divergence


def test_golden_files_hold_nothing_machine_specific() -> None:
    for path in FILES:
        text = path.read_text()
        for needle in (str(REPO), "/home/", "/root/", "/tmp/", "/Users/", "site-packages/"):
            assert needle not in text, (path.name, needle)
        for file in re.findall(r'File \\"([^"\\]+)\\"', text):
            assert file.startswith(("durable/", "storage/", "tests/", "<python>/")), file


@pytest.mark.parametrize(
    ("name", "variant", "position", "recorded", "requested", "call"),
    [
        ("steps", "renamed", 1, "step 'greet'", "step 'welcome'", 'await welcome("golden")'),
        ("steps", "inserted", 2, "step 'add'", "step 'greet'", 'await greet("golden")'),
        ("markers", "reordered", 0, "ctx.now()", "ctx.random()", "chance = ctx.random()"),
        (
            "timer",
            "signalled",
            1,
            "ctx.sleep()",
            "ctx.wait_for_signal('wake')",
            'await ctx.wait_for_signal("wake")',
        ),
        (
            "signals",
            "slept",
            1,
            "ctx.wait_for_signal('approve')",
            "ctx.sleep()",
            "await ctx.sleep(0.25)",
        ),
    ],
)
async def test_a_changed_workflow_diverges_at_the_right_position(
    name: str, variant: str, position: int, recorded: str, requested: str, call: str
) -> None:
    history = golden(name)
    report = await replay(history.run.run_id, history.logged(), make_app(variant=variant).registry)
    assert not report.deterministic
    div = report.divergence
    assert div is not None
    assert (div.position, div.recorded, div.requested) == (position, recorded, requested)
    assert div.where == f"{WORKFLOWS}:{line_of(call)}"


async def test_a_different_child_workflow_diverges() -> None:
    history = golden("children")
    report = await replay(history.run.run_id, history.logged(), make_app(variant="cubed").registry)
    assert not report.deterministic
    div = report.divergence
    assert div is not None
    assert (div.position, div.recorded, div.requested) == (
        0,
        "child run of 'square'",
        "child run of 'cube'",
    )
    assert div.where == f"{WORKFLOWS}:{line_of('result = await ctx.run_child(cube, n)')}"


def durable_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests")])
    # Replaying a file needs no database: point at one that cannot exist.
    env["DURABLE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'none' / 'x.db'}"
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


def test_the_cli_replays_golden_files_offline(tmp_path: Path) -> None:
    steps = str(GOLDEN / "steps.json")
    clean = durable_cli(
        "replay", "--history", steps, "--app", "golden.workflows:app", tmp_path=tmp_path
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "deterministic" in clean.stdout and "NOT" not in clean.stdout
    changed = durable_cli(
        "replay", "--history", steps, "--app", "golden.workflows:renamed_app", tmp_path=tmp_path
    )
    assert changed.returncode == 1, changed.stdout + changed.stderr
    lines = changed.stdout.splitlines()
    assert "side by side at position 1 (event #4)" in lines
    command = next(line.split() for line in lines if line.startswith("* command"))
    assert command == ["*", "command", "step", "'greet'", "step", "'welcome'"]
    code = next(line for line in lines if line.split()[:1] == ["code"])
    assert code.split(None, 2)[2].strip() == 'greeting = await welcome("golden")'
    assert not (tmp_path / "none").exists()


def test_the_golden_updates_cover_what_they_claim() -> None:
    """Two updates accepted while the run waited for a signal, each running a step; the one
    its validator rejected left nothing in the log."""
    from durable._events import UpdateAccepted, UpdateCompleted

    logged = golden("updates").logged()
    accepted = [e.event for e in logged if isinstance(e.event, UpdateAccepted)]
    completed = [e.event for e in logged if isinstance(e.event, UpdateCompleted)]
    assert [a.name for a in accepted] == ["deposit", "deposit"]
    assert [a.pos for a in accepted] == [1, 3]  # after the signal wait at 0, each its step
    assert [c.error for c in completed] == [None, None]
    state = fold("u", logged)
    assert sorted(state.updates) == sorted(a.update_id for a in accepted)
    assert state.status == "succeeded"
