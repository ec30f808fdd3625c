"""SIGKILL worker processes at random moments while they run three 50-step workflows (mostly
sequential, with gathers of three), several times in a row, then let a last process finish.

The moments are drawn from a seeded generator; the seed is printed (pytest shows it on failure)
and can be replayed with CRASH_SEED=<seed>. Most kills land a random delay after the process
started doing steps of its own; some land a random delay after it was spawned, i.e. during
start-up, recovery or while it waits for the dead process's lease to expire.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from crash_child import ChildConfig, RunSpec
from crash_harness import (
    Kill,
    chain_steps,
    check_crash_invariants,
    children,
    choose_deadline,
    read_effects,
    read_snapshot,
    result_of,
)

STEPS = 50
RUNS = [RunSpec(f"chain-{i}", "chain", {"seed": 1000 + i, "n": STEPS}) for i in range(3)]
KILLS = 7
LEASE_TTL = 1.0
CHILD_TIMEOUT = 120.0


def config(workdir: Path) -> ChildConfig:
    return ChildConfig(
        db=str(workdir / "db.sqlite"),
        effects=str(workdir / "effects.log"),
        start=RUNS,
        lease_ttl=LEASE_TTL,
        poll_interval=0.1,
    )


@pytest.mark.slow
def test_kill_at_random_moments(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    print(f"crash seed: {seed} (rerun with CRASH_SEED={seed})")
    rng = random.Random(seed)
    crashed_dir, reference_dir = tmp_path / "crashed", tmp_path / "reference"
    crashed_dir.mkdir()
    reference_dir.mkdir()
    cfg, ref_cfg = config(crashed_dir), config(reference_dir)
    effects = Path(cfg.effects)
    kills: list[Kill] = []
    with children(tmp_path) as kids:
        reference = kids.spawn(ref_cfg, "reference")  # crash-free, meanwhile, on its own file
        results: dict[str, Any] | None = None
        for i in range(KILLS):
            child = kids.spawn(cfg, f"victim{i}")
            deadline = choose_deadline(
                rng,
                child,
                lambda pid: any(e.pid == pid for e in read_effects(effects)),
                lease_ttl=LEASE_TTL,
                timeout=CHILD_TIMEOUT,
                seed=seed,
            )
            while time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.005)
            if child.poll() is not None:  # it finished every run before its moment came
                results = child.results(CHILD_TIMEOUT)
                break
            child.kill()
            kills.append(Kill(child.pid, read_snapshot(Path(cfg.db))))
        if results is None:
            results = kids.spawn(cfg, "survivor").results(CHILD_TIMEOUT)
        expected = reference.results(CHILD_TIMEOUT)
        pids = kids.pids - {reference.pid}
    assert len(kills) >= 3, f"only {len(kills)} kills landed before the runs finished (seed {seed})"
    final = read_snapshot(Path(cfg.db))
    steps = {spec.run_id: chain_steps(STEPS) for spec in RUNS}
    report = check_crash_invariants(final, steps, kills, read_effects(effects), pids)
    for spec in RUNS:
        assert results[spec.run_id] == expected[spec.run_id] == result_of(final, spec.run_id), (
            f"run {spec.run_id}: result differs from the crash-free run (seed {seed})"
        )
        assert expected[spec.run_id]["steps"] == STEPS
    repeated = sum(report.in_flight.values())
    print(f"{len(kills)} kills; {repeated} step executions were cut short and ran again")
