"""SIGKILL a real worker process after every commit of a run that continues as new twice
(ctx.continue_as_new(), two steps per history), then finish it with a clean process on the same
SQLite file: the result equals the crash-free one, the chain of histories is whole, the kept
log is gap-free and grew only by appending, and no step whose completion was durable ran
again."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
from crash_child import ChildConfig, RunSpec
from crash_harness import Snapshot, children, read_effects, read_snapshot

from durable import decode_value
from durable._events import RunStarted, StepCompleted, StepStarted
from storage import HistoryRecord, open_store

RUN = "loop"
LAST = 2  # generations 0..2: two continuations
STEPS = {100 * g + i for g in range(LAST + 1) for i in range(2)}
CHILD_TIMEOUT = 90.0
PARALLEL_TRIALS = 3


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]
    final: Snapshot
    chain: list[HistoryRecord]
    effects: Counter[int]
    at_kill: Snapshot | None


def config(workdir: Path) -> ChildConfig:
    return ChildConfig(
        db=str(workdir / "db.sqlite"),
        effects=str(workdir / "effects.log"),
        start=[RunSpec(RUN, "looping", {"gen": 0, "total": 1, "last": LAST})],
        lease_ttl=1.0,
        poll_interval=0.1,
    )


async def _chain(db: str) -> list[HistoryRecord]:
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        return await store.list_histories(RUN)
    finally:
        await store.close()


def trial(workdir: Path, kill_after_seq: int | None = None) -> Outcome:
    workdir.mkdir(parents=True, exist_ok=True)
    base = config(workdir)
    at_kill = None
    with children(workdir) as kids:
        if kill_after_seq is not None:
            cfg = msgspec.structs.replace(base, kill_after_seq=kill_after_seq)
            kids.spawn(cfg, "killed").wait_killed(CHILD_TIMEOUT)
            at_kill = read_snapshot(Path(base.db))
        result = kids.spawn(base, "clean").results(CHILD_TIMEOUT)[RUN]
    effects = Counter(e.pos for e in read_effects(Path(base.effects)))
    final = read_snapshot(Path(base.db))
    return Outcome(result, final, asyncio.run(_chain(base.db)), effects, at_kill)


def check(outcome: Outcome, crash_free: Outcome) -> None:
    assert outcome.result == crash_free.result
    chain = outcome.chain
    assert [h.generation for h in chain] == list(range(LAST + 1))
    for before, after in itertools.pairwise(chain):
        assert before.last_seq is not None and after.first_seq == before.last_seq + 1
    log = outcome.final.logs[RUN]
    seqs = [e.seq for e in log]
    # Kept: the last history and the one before it, without a gap.
    assert seqs == list(range(chain[-2].first_seq, seqs[-1] + 1))
    assert [e.type for e in log].count("RunStarted") == 2
    assert outcome.final.runs[RUN].status == "succeeded"
    # Every step ran; at most twice (once more only if the kill caught it in flight).
    assert set(outcome.effects) == STEPS
    assert max(outcome.effects.values()) <= 2, outcome.effects
    if outcome.at_kill is not None:
        # What was durable at the kill is still there, unchanged, where it is still kept.
        kept = {e.seq: e for e in log}
        for event in outcome.at_kill.logs.get(RUN, []):
            if event.seq in kept:
                assert kept[event.seq].event == event.event, event.seq
        # A step recorded completed at the kill never ran again.
        for key in completed_steps(outcome.at_kill):
            assert outcome.effects[key] == 1, (key, outcome.effects)


def completed_steps(snapshot: Snapshot) -> set[int]:
    """The effect keys (100 * generation + i) of the steps whose completion was durable; a
    log position repeats in every history, so StepStarted is matched within its history."""
    done: set[int] = set()
    keys: dict[int, int] = {}
    for logged in snapshot.logs.get(RUN, []):
        event = logged.event
        if isinstance(event, RunStarted):
            keys = {}
        elif isinstance(event, StepStarted):
            keys[event.pos] = decode_value(event.input)[0][1]
        elif isinstance(event, StepCompleted) and event.pos in keys:
            done.add(keys[event.pos])
    return done


@pytest.fixture(scope="module")
def crash_free(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    outcome = trial(tmp_path_factory.mktemp("crash_free"))
    assert outcome.effects == Counter(dict.fromkeys(STEPS, 1))
    return outcome


def test_the_crash_free_run_continues_twice(crash_free: Outcome) -> None:
    assert crash_free.result["generations"] == LAST + 1
    check(crash_free, crash_free)


@pytest.mark.slow
def test_kill_after_every_commit_of_a_continuing_run(crash_free: Outcome, tmp_path: Path) -> None:
    last = crash_free.final.runs[RUN].last_seq
    trials: dict[int, Callable[[], Outcome]] = {
        k: partial(trial, tmp_path / f"k{k}", kill_after_seq=k) for k in range(1, last + 1)
    }
    failures: list[str] = []
    with ThreadPoolExecutor(PARALLEL_TRIALS) as pool:
        futures = {k: pool.submit(t) for k, t in trials.items()}
        for k, fut in futures.items():
            try:
                check(fut.result(), crash_free)
            except Exception as exc:
                failures.append(f"--- kill after seq {k}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures)
