"""Leases between real processes on one SQLite file: a run is executed by one process at a time,
and a SIGKILLed process's runs are taken over by a live one once their leases expire."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest
from crash_child import ChildConfig, RunSpec
from crash_harness import (
    Kill,
    chain_steps,
    check_crash_invariants,
    children,
    read_effects,
    read_snapshot,
    result_of,
    wait_until,
)

CHILD_TIMEOUT = 120.0
# Slack on top of the lease for a takeover: the claim poll, process scheduling on a busy machine.
TAKEOVER_SLACK = 5.0


def config(workdir: Path, runs: list[RunSpec], **kw: float | int | bool) -> ChildConfig:
    base = ChildConfig(
        db=str(workdir / "db.sqlite"), effects=str(workdir / "effects.log"), start=runs
    )
    return msgspec.structs.replace(base, **kw)


@pytest.mark.slow
def test_two_processes_never_run_the_same_run(tmp_path: Path) -> None:
    # Each process executes at most two runs at once, so both get some of the six; nobody
    # dies, so no lease may expire and every run must stay with the process that took it.
    steps = 10
    runs = [RunSpec(f"shared-{i}", "chain", {"seed": i, "n": steps}) for i in range(6)]
    cfg = config(tmp_path, runs, lease_ttl=2.0, poll_interval=0.1, max_concurrent_runs=2, gate=True)
    with children(tmp_path) as kids:
        workers = [kids.spawn(cfg, f"worker{i}") for i in range(2)]
        for w in workers:
            assert json.loads(w.read_line(CHILD_TIMEOUT)) == {"ready": w.pid}
        for w in workers:  # both start (the same runs: start is idempotent) at the same time
            w.release_gate()
        results = [w.results(CHILD_TIMEOUT) for w in workers]
    final = read_snapshot(Path(cfg.db))
    effects = read_effects(Path(cfg.effects))
    check_crash_invariants(
        final, {r.run_id: chain_steps(steps) for r in runs}, [], effects, kids.pids
    )
    # Each run was leased once (epoch 1) and all its steps ran in one process.
    assert {r.run_id: final.runs[r.run_id].epoch for r in runs} == {r.run_id: 1 for r in runs}
    executors = {r.run_id: {e.pid for e in effects if e.run_id == r.run_id} for r in runs}
    assert all(len(pids) == 1 for pids in executors.values()), executors
    assert set().union(*executors.values()) == {w.pid for w in workers}, executors
    for r in runs:
        assert results[0][r.run_id] == results[1][r.run_id] == result_of(final, r.run_id)


@pytest.mark.slow
def test_dead_process_runs_are_taken_over_after_lease_expiry(tmp_path: Path) -> None:
    lease_ttl, steps = 1.5, 50
    runs = [RunSpec(f"orphan-{i}", "chain", {"seed": 7 * i, "n": steps}) for i in range(3)]
    (tmp_path / "main").mkdir()
    (tmp_path / "ref").mkdir()
    owner_cfg = config(
        tmp_path / "main", runs, lease_ttl=lease_ttl, poll_interval=0.1, step_scale=3.0
    )
    # The heir knows the run ids but does not start them: it only waits for their results.
    heir_cfg = msgspec.structs.replace(
        owner_cfg, start=[], wait=[r.run_id for r in runs], gate=True
    )
    effects = Path(owner_cfg.effects)
    with children(tmp_path) as kids:
        reference = kids.spawn(config(tmp_path / "ref", runs), "reference")
        owner = kids.spawn(owner_cfg, "owner")
        wait_until(
            "the owner to be a few steps into every run",
            lambda: all(
                sum(e.run_id == r.run_id and e.pid == owner.pid for e in read_effects(effects)) >= 3
                for r in runs
            ),
            CHILD_TIMEOUT,
        )
        heir = kids.spawn(heir_cfg, "heir")
        assert json.loads(heir.read_line(CHILD_TIMEOUT)) == {"ready": heir.pid}
        heir.release_gate()
        # Both alive for longer than a lease: the heir polls for claimable runs all along,
        # and must not take any while the owner keeps its leases alive.
        time.sleep(lease_ttl + 0.5)
        assert owner.poll() is None, "the owner finished before it could be killed"
        killed_at = time.time()
        owner.kill()
        at_kill = read_snapshot(Path(owner_cfg.db))
        results = heir.results(CHILD_TIMEOUT)
        expected = reference.results(CHILD_TIMEOUT)
    final = read_snapshot(Path(owner_cfg.db))
    lines = read_effects(effects)
    check_crash_invariants(
        final,
        {r.run_id: chain_steps(steps) for r in runs},
        [Kill(owner.pid, at_kill)],
        lines,
        {owner.pid, heir.pid},
    )
    assert all(e.at < killed_at for e in lines if e.pid == owner.pid)
    early = [e for e in lines if e.pid == heir.pid and e.at < killed_at]
    assert not early, f"the heir ran steps of runs the owner still held: {early}"
    for r in runs:
        assert at_kill.runs[r.run_id].status == "running", "the run ended before the kill"
        first = min(e.at for e in lines if e.pid == heir.pid and e.run_id == r.run_id)
        takeover = first - killed_at
        print(f"run {r.run_id} taken over {takeover:.2f}s after the kill (lease {lease_ttl}s)")
        assert takeover <= lease_ttl + TAKEOVER_SLACK, (
            f"run {r.run_id} taken over {takeover:.1f}s after the kill (lease {lease_ttl}s)"
        )
        assert results[r.run_id] == expected[r.run_id] == result_of(final, r.run_id)


def test_processes_opening_a_new_database_at_once(tmp_path: Path) -> None:
    # Workers of one deployment are often started together on a file that does not exist yet;
    # each must open it, whoever creates the schema. (Before the schema was created in one
    # BEGIN IMMEDIATE transaction, a third or so of such opens failed with "table
    # durable_runs already exists".)
    cfg = config(tmp_path, [], gate=True)
    with children(tmp_path) as kids:
        procs = [kids.spawn(cfg, f"opener{i}") for i in range(4)]
        for p in procs:
            line = p.read_line(CHILD_TIMEOUT)
            assert line, f"child {p.pid} failed to open the database:\n{p.stderr_tail()}"
            p.release_gate()
        for p in procs:
            assert p.results(CHILD_TIMEOUT) == {}
