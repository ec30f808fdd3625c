"""SIGKILL a real worker process at every event boundary of a five-step workflow (with a
concurrent pair and two ctx markers), and inside every step, then restart on the same database.

Each trial uses a fresh database: a child kills itself right after the commit that makes event
seq K durable (K = 1..n, n = the events of a crash-free run), and a clean child started on the
same file takes the run over once the dead process's lease expires and finishes it. The result
must equal the crash-free result and the invariants of crash_harness must hold.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from crash_child import ChildConfig, RunSpec
from crash_harness import (
    FIVE_STEPS,
    Kill,
    Report,
    Snapshot,
    check_crash_invariants,
    children,
    marker_values,
    read_effects,
    read_snapshot,
    result_of,
)

from durable import decode_value

RUN = "r1"
# Short leases: the restarted child waits for the killed one's lease to expire.
LEASE_TTL = 1.0
# Trials are independent (own database), and mostly wait on sleeps and leases: run a few at once.
PARALLEL_TRIALS = 3
CHILD_TIMEOUT = 90.0


@dataclass(frozen=True)
class Outcome:
    results: dict[str, Any]
    final: Snapshot
    report: Report
    durable_at_kill: int  # the run's last seq once the killed process was dead (0: no kill)


def config(workdir: Path) -> ChildConfig:
    return ChildConfig(
        db=str(workdir / "db.sqlite"),
        effects=str(workdir / "effects.log"),
        start=[RunSpec(RUN, "five", {"x": 4})],
        lease_ttl=LEASE_TTL,
        poll_interval=0.1,
    )


def run_trial(workdir: Path, **kill: int) -> Outcome:
    """One child killed at the given point (kill_after_seq=K or kill_in_step=pos), then a clean
    child on the same database."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = config(workdir)
    note = workdir / "kill_note"
    with children(workdir) as kids:
        killed = kids.spawn(msgspec.structs.replace(base, kill_note=str(note), **kill), "killed")
        killed.wait_killed(CHILD_TIMEOUT)
        at_kill = read_snapshot(Path(base.db))
        clean = kids.spawn(base, "restarted")
        results = clean.results(CHILD_TIMEOUT)
        final = read_snapshot(Path(base.db))
    durable = len(at_kill.logs.get(RUN, []))
    if "kill_after_seq" in kill:
        # The kill is exact: what is durable is the commit the killer saw, nothing after it.
        noted = int(note.read_text())
        assert durable == noted >= kill["kill_after_seq"], (durable, noted, kill)
    report = check_crash_invariants(
        final,
        {RUN: FIVE_STEPS},
        [Kill(killed.pid, at_kill)],
        read_effects(Path(base.effects)),
        kids.pids,
    )
    assert results[RUN] == result_of(final, RUN)
    return Outcome(results, final, report, durable)


@pytest.fixture(scope="module")
def crash_free(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    workdir = tmp_path_factory.mktemp("crash_free")
    base = config(workdir)
    with children(workdir) as kids:
        results = kids.spawn(base, "clean").results(CHILD_TIMEOUT)
    final = read_snapshot(Path(base.db))
    report = check_crash_invariants(
        final, {RUN: FIVE_STEPS}, [], read_effects(Path(base.effects)), kids.pids
    )
    check_markers(final, results[RUN])
    return Outcome(results, final, report, 0)


def check_markers(final: Snapshot, result: dict[str, Any]) -> None:
    """ctx.uuid4() and ctx.now() gave the workflow the values recorded the first time, on every
    replay: the result (computed by the last process) and s5's arguments carry them."""
    events = final.logs[RUN]
    markers = marker_values(events)
    assert sorted(markers) == [0, 5], markers
    tag = str(uuid.UUID(hex=markers[0]))
    assert result["tag"] == tag
    assert result["now"] == dt.datetime.fromtimestamp(markers[5], dt.UTC).timestamp()
    started: list[Any] = [e.event for e in events if e.type == "StepStarted"]
    s5_args = [decode_value(ev.input)[0] for ev in started if ev.pos == 6]
    assert s5_args and all(args[3] == tag for args in s5_args), s5_args


def deterministic_part(result: dict[str, Any]) -> dict[str, Any]:
    # tag and now differ between separate runs by design; check_markers covers them.
    return {k: v for k, v in result.items() if k not in ("tag", "now")}


def run_all(trials: dict[str, Callable[[], Outcome]]) -> dict[str, Outcome]:
    """Run the trials concurrently; fail listing every trial that failed, not just the first."""
    outcomes: dict[str, Outcome] = {}
    failures: list[str] = []
    with ThreadPoolExecutor(PARALLEL_TRIALS) as pool:
        futures = {name: pool.submit(trial) for name, trial in trials.items()}
        for name, fut in futures.items():
            try:
                outcomes[name] = fut.result()
            except Exception as exc:
                failures.append(f"--- {name}: {type(exc).__name__}: {exc}")
    assert not failures, f"{len(failures)} of {len(trials)} trials failed:\n" + "\n".join(failures)
    return outcomes


def check_outcome(outcome: Outcome, crash_free: Outcome) -> None:
    result = outcome.results[RUN]
    assert deterministic_part(result) == deterministic_part(crash_free.results[RUN])
    check_markers(outcome.final, result)


def test_crash_free_run_shape(crash_free: Outcome) -> None:
    # The boundaries below are these events; a change here means the trials test other points.
    types = [e.type for e in crash_free.final.logs[RUN]]
    assert types.count("StepCompleted") == 5
    assert types.count("MarkerRecorded") == 2
    assert crash_free.report.effects == dict.fromkeys(((RUN, p) for p in FIVE_STEPS), 1)


@pytest.mark.slow
def test_kill_at_every_event_boundary(crash_free: Outcome, tmp_path: Path) -> None:
    n = len(crash_free.final.logs[RUN])  # the crash-free run's events: 14
    trials: dict[str, Callable[[], Outcome]] = {
        f"kill after seq {k}": partial(run_trial, tmp_path / f"k{k}", kill_after_seq=k)
        for k in range(1, n + 1)
    }
    outcomes = run_all(trials)
    for outcome in outcomes.values():
        check_outcome(outcome, crash_free)
    # Kills are exact, so every commit boundary of the run was hit (events committed together,
    # like a ctx marker and the next StepStarted sometimes are, share one boundary).
    boundaries = sorted({o.durable_at_kill for o in outcomes.values()})
    print(f"durable event counts at the kills: {boundaries}")
    assert boundaries[-1] == n, boundaries


@pytest.mark.slow
def test_kill_inside_every_step(crash_free: Outcome, tmp_path: Path) -> None:
    trials: dict[str, Callable[[], Outcome]] = {
        f"kill inside step at pos {pos}": partial(run_trial, tmp_path / f"p{pos}", kill_in_step=pos)
        for pos in FIVE_STEPS
    }
    outcomes = run_all(trials)
    for name, outcome in outcomes.items():
        check_outcome(outcome, crash_free)
        pos = int(name.rsplit(" ", 1)[1])
        # The killed step had run its side effect and was recorded nowhere: it ran again.
        assert outcome.report.in_flight[(RUN, pos)] == 1, (name, outcome.report)
        assert outcome.report.effects[(RUN, pos)] == 2, (name, outcome.report)
