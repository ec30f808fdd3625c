"""The parent side of the crash tests: spawning and killing worker processes, reading what they
left behind (the database, the side-effect file) and checking the crash invariants.

The invariants, for every run the test started:
- the run exists and ended succeeded (no run lost);
- its log is gap-free (seq 1..n), starts with RunStarted, ends with its only terminal event, and
  holds exactly one StepCompleted per step position and no StepFailed;
- every attempt of a step got the same arguments, and the engine recorded each step at the
  position the workflow meant (the workflow passes it as an argument);
- the log only ever grew: what was durable at each kill is a prefix of the final log;
- each step's side effect ran 1 + k times, where k is the number of killed processes that ran
  the step body but died before its StepCompleted was durable ("in flight" at that kill).
"""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import msgspec
from crash_child import ChildConfig

from durable import LoggedEvent, decode_record, decode_value
from storage import RunQuery, RunRecord, open_store

CHILD_SCRIPT = Path(__file__).with_name("crash_child.py")

# Positions of the five workflow's steps (0 and 5 are ctx.uuid4() / ctx.now() markers).
FIVE_STEPS = {1: "s1", 2: "s2", 3: "s3", 4: "s4", 6: "s5"}


def chain_steps(n: int) -> dict[int, str]:
    return dict.fromkeys(range(n), "work")


class Effect(NamedTuple):
    run_id: str
    pos: int
    name: str
    pid: int
    at: float


def read_effects(path: Path) -> list[Effect]:
    if not path.exists():
        return []
    effects = []
    # A line still being written by a live process has no newline yet: skip it.
    for line in path.read_text().split("\n")[:-1]:
        run_id, pos, name, pid, at = line.split()
        effects.append(Effect(run_id, int(pos), name, int(pid), float(at)))
    return effects


@dataclass(frozen=True)
class Snapshot:
    """The durable state of the database at one moment: run rows and decoded logs."""

    runs: dict[str, RunRecord]
    logs: dict[str, list[LoggedEvent]]

    def completed(self, run_id: str) -> set[int]:
        events: list[Any] = [e.event for e in self.logs.get(run_id, [])]
        return {ev.pos for ev in events if type(ev).__name__ == "StepCompleted"}


def read_snapshot(db: Path) -> Snapshot:
    return asyncio.run(_read_snapshot(db))


async def _read_snapshot(db: Path) -> Snapshot:
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        rows = await store.list_runs(RunQuery(limit=100_000))
        logs = {
            r.run_id: [decode_record(e) for e in await store.read_events(r.run_id)] for r in rows
        }
        return Snapshot({r.run_id: r for r in rows}, logs)
    finally:
        await store.close()


@dataclass(frozen=True)
class Kill:
    """A process we SIGKILLed and what was durable once it was dead."""

    pid: int
    snapshot: Snapshot


class Process:
    """A child Python process of a crash test. stderr goes to a file, shown when something
    fails; stdout is a pipe the test reads the child's report from."""

    def __init__(self, argv: list[str], stderr_path: Path, *, stdin_pipe: bool = False) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def stderr_tail(self, chars: int = 3000) -> str:
        self._stderr.flush()
        text = self.stderr_path.read_text(errors="replace")
        return text[-chars:] or "(empty)"

    def kill(self) -> None:
        """SIGKILL the process (if it is still alive) and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close()

    def last_line(self, timeout: float) -> str:
        """Wait for a clean exit and return the last line the process printed."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"child {self.pid} did not finish within {timeout}s; stderr:\n{self.stderr_tail()}"
            ) from None
        self._close()
        assert self.proc.returncode == 0, (
            f"child {self.pid} exited with {self.proc.returncode}; stderr:\n{self.stderr_tail()}"
        )
        return out.strip().splitlines()[-1]

    def _close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            if stream is not None and not stream.closed:
                stream.close()


class Child(Process):
    """A crash_child.py process."""

    def __init__(self, cfg: ChildConfig, stderr_path: Path) -> None:
        argv = [sys.executable, str(CHILD_SCRIPT), msgspec.json.encode(cfg).decode()]
        super().__init__(argv, stderr_path, stdin_pipe=cfg.gate)

    def wait_killed(self, timeout: float) -> None:
        """Wait for a process that is meant to SIGKILL itself."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"child {self.pid} did not kill itself within {timeout}s; stderr:\n"
                f"{self.stderr_tail()}"
            ) from None
        self._close()
        assert rc == -signal.SIGKILL, (
            f"child {self.pid} exited with {rc} instead of being killed; stderr:\n"
            f"{self.stderr_tail()}"
        )

    def results(self, timeout: float) -> dict[str, Any]:
        """Wait for a clean exit and return the results the child printed."""
        results: dict[str, Any] = msgspec.json.decode(self.last_line(timeout))["results"]
        return results

    def read_line(self, timeout: float) -> str:
        """The next stdout line (e.g. the gate's ready line), within timeout."""
        stdout = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"child {self.pid} printed nothing within {timeout}s")
        return stdout.readline()

    def release_gate(self) -> None:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write("go\n")
        stdin.flush()


def choose_deadline(
    rng: random.Random,
    child: Process,
    ran_a_step: Callable[[int], bool],
    *,
    lease_ttl: float,
    timeout: float,
    seed: int,
) -> float:
    """When (time.monotonic()) to kill this child: 30% of the time counted from its spawn
    (start-up, recovery, waiting for a dead one's lease), else shortly after its first step
    (`ran_a_step(pid)`), in the middle of real work."""
    if rng.random() < 0.3:
        return child.started_at + rng.uniform(0.0, lease_ttl + 0.5)
    wait_until(
        f"child {child.pid} to run a step (seed {seed})",
        lambda: child.poll() is not None or ran_a_step(child.pid),
        timeout,
    )
    return time.monotonic() + rng.uniform(0.0, 0.5)


class Children:
    """Spawns children and makes sure none outlives the test, whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.all: list[Child] = []

    def spawn(self, cfg: ChildConfig, name: str) -> Child:
        child = Child(cfg, self.workdir / f"{name}.stderr")
        self.all.append(child)
        return child

    @property
    def pids(self) -> set[int]:
        return {c.pid for c in self.all}

    def kill_all(self) -> None:
        for child in self.all:
            child.kill()  # reaps and closes the pipes of those already gone too


@contextmanager
def children(workdir: Path) -> Iterator[Children]:
    kids = Children(workdir)
    try:
        yield kids
    finally:
        kids.kill_all()


def wait_until(what: str, cond: Callable[[], bool], timeout: float, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# -- the invariants ------------------------------------------------------------------------


@dataclass
class Report:
    """What check_crash_invariants found, for tests that assert more (e.g. coverage)."""

    in_flight: Counter[tuple[str, int]] = field(default_factory=Counter)
    effects: Counter[tuple[str, int]] = field(default_factory=Counter)


def check_log(run_id: str, events: list[LoggedEvent], steps: dict[int, str]) -> None:
    where = f"run {run_id}"
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)), f"{where}: seqs not gap-free: {seqs}"
    types = [e.type for e in events]
    assert types[0] == "RunStarted", f"{where}: first event is {types[0]}"
    assert types[-1] == "RunCompleted", f"{where}: last event is {types[-1]}: {types}"
    terminal = [t for t in types if t in ("RunCompleted", "RunFailed", "RunCancelled")]
    assert terminal == ["RunCompleted"], f"{where}: terminal events {terminal}"
    assert "StepFailed" not in types, f"{where}: a step failed: {types}"
    completions: Counter[int] = Counter()
    inputs: dict[int, bytes] = {}
    for e in events:
        ev: Any = e.event
        if e.type == "StepStarted":
            assert steps.get(ev.pos) == ev.name, f"{where}: step {ev.name} at pos {ev.pos}"
            # Re-executions after a crash must pass exactly the arguments of the first attempt.
            assert inputs.setdefault(ev.pos, bytes(ev.input)) == bytes(ev.input), (
                f"{where}: pos {ev.pos} started with different arguments"
            )
            args = decode_value(ev.input)[0]
            assert args[:2] == [run_id, ev.pos], f"{where}: pos {ev.pos} got args {args}"
        elif e.type == "StepCompleted":
            assert ev.pos in inputs, f"{where}: pos {ev.pos} completed before it started"
            completions[ev.pos] += 1
    logged: list[Any] = [e.event for e in events]
    markers = [ev.pos for ev in logged if type(ev).__name__ == "MarkerRecorded"]
    assert len(set(markers)) == len(markers), f"{where}: a ctx value recorded twice: {markers}"
    assert not set(markers) & set(steps), f"{where}: markers at step positions: {markers}"
    assert completions == Counter(dict.fromkeys(steps, 1)), (
        f"{where}: completion records per position: {dict(sorted(completions.items()))}"
    )


def check_crash_invariants(
    final: Snapshot,
    steps: dict[str, dict[int, str]],
    kills: list[Kill],
    effects: list[Effect],
    pids: set[int],
) -> Report:
    """steps: run_id -> {pos: step name} for every run the test started."""
    report = Report()
    for run_id, run_steps in steps.items():
        row = final.runs.get(run_id)
        assert row is not None, f"run {run_id} lost: not in the database"
        assert row.status == "succeeded", f"run {run_id} ended {row.status}"
        events = final.logs[run_id]
        check_log(run_id, events, run_steps)
        last: Any = events[-1].event
        assert row.result == bytes(last.result), f"run {run_id}: row result differs from log"
        final_log = [encoded(e) for e in events]
        for kill in kills:
            before = [encoded(e) for e in kill.snapshot.logs.get(run_id, [])]
            assert final_log[: len(before)] == before, (
                f"run {run_id}: events durable when {kill.pid} was killed changed afterwards"
            )
    unknown = {e.pid for e in effects} - pids
    assert not unknown, f"side effects from processes we did not start: {unknown}"
    for e in effects:
        assert e.run_id in steps and steps[e.run_id].get(e.pos) == e.name, f"stray effect {e}"
    per_step: dict[tuple[str, int], list[Effect]] = {}
    for e in effects:
        per_step.setdefault((e.run_id, e.pos), []).append(e)
    for run_id, run_steps in steps.items():
        for pos in run_steps:
            lines = per_step.get((run_id, pos), [])
            by_pid = Counter(e.pid for e in lines)
            assert all(n == 1 for n in by_pid.values()), (
                f"run {run_id} pos {pos}: one process ran the step twice: {by_pid}"
            )
            in_flight = [
                k.pid for k in kills if k.pid in by_pid and pos not in k.snapshot.completed(run_id)
            ]
            report.in_flight[(run_id, pos)] = len(in_flight)
            report.effects[(run_id, pos)] = len(lines)
            assert len(lines) == 1 + len(in_flight), (
                f"run {run_id} pos {pos}: side effect ran {len(lines)} times (pids "
                f"{sorted(by_pid)}), but it was in flight at {len(in_flight)} kills {in_flight}"
            )
    return report


def encoded(e: LoggedEvent) -> tuple[int, str, bytes]:
    return e.seq, e.type, msgspec.msgpack.encode(e.event)


def result_of(snapshot: Snapshot, run_id: str) -> Any:
    row = snapshot.runs[run_id]
    assert row.result is not None
    return decode_value(row.result)


def marker_values(events: list[LoggedEvent]) -> dict[int, Any]:
    markers: list[Any] = [e.event for e in events if e.type == "MarkerRecorded"]
    return {ev.pos: decode_value(ev.value) for ev in markers}
