"""SIGKILL a worker at random moments while it runs a 30-step YAML DAG (parallel branches, fan-out
and fan-in, two matrix steps with parallelism caps, failing steps with `run_always` handlers,
steps skipped by all_success and by a false condition), several times in a row, restarting it
on the same database each time, then let a last worker finish the run.

Every script step appends "<instance name> <worker pid>" to a side-effect file (one O_APPEND
write, before its work) and prints a result computed from its name and its dependencies' output
(tests/crash/dag/step.sh). Then:
- the final log is well formed: gap-free seqs, one terminal event, one outcome per instance and
  nothing started after it, the exact set of instances the definition calls for;
- what was durable at each kill is a prefix of the final log, and every instance started and
  unfinished at a kill is started again afterwards;
- no instance whose outcome was durable at a kill ran in a later worker;
- each instance's side effect ran 1 + k times, k the number of killed workers that ran it before
  its outcome was durable. ("Ran it" is read from the side-effect lines, not from StepStarted:
  StepStarted is written behind the step body, see durable/_runlog.py, so a kill can find a
  body that ran without a durable StepStarted, or a durable StepStarted whose script never got
  to its first line.)
- every step's status, result, error, skip reason and attempts equal those of a crash-free run
  of the same definition on another database.

The moments are drawn from a seeded generator; the seed is printed (pytest shows it on failure)
and can be replayed with CRASH_SEED=<seed>.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from crash_harness import Process, Snapshot, choose_deadline, encoded, read_snapshot

from durable import LoggedEvent

DAG_DIR = Path(__file__).with_name("dag")
CHILD_SCRIPT = DAG_DIR / "dag_child.py"
STEP_SCRIPT = DAG_DIR / "step.sh"
RUN = "dag-crash"
KILLS = 6
LEASE_TTL = 1.0
CHILD_TIMEOUT = 60.0  # a worker that neither finishes nor dies by then has hung
PROGRESS_TIMEOUT = 30.0
REFERENCE_MAX_SECONDS = 20.0  # the crash-free run takes ~3 s here


# -- the definition ------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    id: str
    deps: tuple[str, ...] = ()
    fail: str | None = None  # JS for the exit status: "3" fails every instance
    run_always: bool = False
    matrix: dict[str, list[int]] = field(default_factory=dict)
    index: str | None = None  # JS for a matrix instance's index from its values
    parallelism: int | None = None
    condition: str | None = None
    body: tuple[str, ...] = ()  # a loop over these steps, three times
    in_loop: bool = False  # a step of a loop's body: instances `id#n`
    carry: str | None = None  # a step whose output (last iteration's) it reads as well


LOOP_ITERATIONS = 3

TASKS = [
    Task("start"),
    # A: a chain, with a failing step hanging off it and what depends on that failure.
    Task("a1", ("start",)),
    Task("a2", ("a1",)),
    Task("a3", ("a2",)),
    Task("a4", ("a3",)),
    Task("a_fail", ("a2",), fail="3"),
    Task("a_rescue", ("a_fail",), run_always=True),
    Task("a_skip", ("a_fail",)),  # all_success: skipped
    Task("a_skip2", ("a_skip", "a4")),  # skipped in turn
    # B: fan-out and fan-in.
    Task("b1", ("start",)),
    Task("b2", ("start",)),
    Task("b3", ("start",)),
    Task("b4", ("start",)),
    Task("b_join", ("b1", "b2", "b3", "b4")),
    # C: a 2x2 matrix, two at a time, and a 3-matrix whose instance 1 fails.
    Task(
        "mx",
        ("start",),
        matrix={"x": [0, 1], "y": [0, 1]},
        index="matrix.x * 2 + matrix.y",
        parallelism=2,
    ),
    Task("mx_sum", ("mx",)),
    Task(
        "mf",
        ("b1",),
        matrix={"k": [0, 1, 2]},
        index="matrix.k",
        parallelism=2,
        fail="matrix.k == 1 ? 4 : 0",
    ),
    Task("mf_after", ("mf",)),  # all_success: skipped
    Task("mf_rescue", ("mf",), run_always=True),
    # D: another chain, the last step of which is skipped by its condition.
    Task("d1", ("start",)),
    Task("d2", ("d1",)),
    Task("d3", ("d2",)),
    Task("d4", ("d3",)),
    Task("d5", ("d4",), condition="{{ d4.exit_code != 0 }}"),
    # E: a loop over a two-step body; each iteration reads what the last one produced.
    Task("lp", ("start",), body=("l1", "l2")),
    Task("l1", in_loop=True, carry="l2"),
    Task("l2", ("l1",), in_loop=True),
    # Everything meets again.
    Task("join", ("a4", "a_rescue", "b_join", "mx_sum", "mf_rescue", "d4", "lp")),
    Task("e1", ("join",)),
    Task("e2", ("join",)),
    Task("e3", ("join",), condition="{{ steps.mx_sum.succeeded && steps.a_fail.failed }}"),
    Task("final", ("e1", "e2", "e3")),
    Task("cleanup", ("final", "a_skip2", "mf_after", "d5"), run_always=True),
]
EXPECTED_STATUS = {t.id: "succeeded" for t in TASKS} | {
    "a_fail": "failed",
    "mf": "failed",
    "a_skip": "skipped",
    "a_skip2": "skipped",
    "mf_after": "skipped",
    "d5": "skipped",
}
# What a dependency printed, whatever it is: a step's result, a matrix's list of them
# (null for a failed instance), or null (failed or skipped).
_OUTPUT = (
    '(v => v === null ? "-" : Array.isArray(v) '
    '? v.map(r => r === null ? "-" : r.stdout).join(",") : v.stdout)'
)


def instance_names(task: Task) -> list[str]:
    if task.body or task.in_loop:
        return [f"{task.id}#{n}" for n in range(1, LOOP_ITERATIONS + 1)]
    if not task.matrix:
        return [task.id]
    n = 1
    for values in task.matrix.values():
        n *= len(values)
    return [f"{task.id}[{i}]" for i in range(n)]


def task_yaml(task: Task) -> dict[str, Any]:
    if task.body:  # a group: no work of its own
        loop = {
            "body": list(task.body),
            "until": f"{{{{ iteration >= {LOOP_ITERATIONS} }}}}",
            "max_iterations": LOOP_ITERATIONS + 2,
        }
        return {"depends_on": list(task.deps), "loop": loop}
    name = task.id if task.index is None else f"{task.id}[{{{{ {task.index} }}}}]"
    if task.in_loop:
        name = f"{task.id}#{{{{ iteration }}}}"
    delay = 0.05 + 0.05 * (zlib.crc32(task.id.encode()) % 4)  # 0.05 .. 0.2 s
    env: dict[str, str] = {"EFFECTS": "{{ input.effects }}", "NAME": name, "DELAY": f"{delay}"}
    if task.deps:
        parts = [f'steps["{d}"].status + ":" + {_OUTPUT}(deps["{d}"])' for d in task.deps]
        env["IN"] = "{{ [" + ", ".join(parts) + '].join(";") }}'
    if task.carry is not None:  # undefined in the first iteration
        c = task.carry
        env["IN"] = f'{{{{ steps["{c}"] ? {_OUTPUT}(steps["{c}"].result) : "first" }}}}'
    if task.fail is not None:
        env["FAIL"] = f"{{{{ {task.fail} }}}}"
    out: dict[str, Any] = {"script": f". {shlex.quote(str(STEP_SCRIPT))}", "environment": env}
    if task.deps:
        out["depends_on"] = list(task.deps)
    if task.matrix:
        out["matrix"] = task.matrix
    if task.parallelism is not None:
        out["parallelism"] = task.parallelism
    if task.run_always:
        out["run_always"] = True
    if task.condition is not None:
        out["condition"] = task.condition
    return out


def write_dag(path: Path) -> Path:
    doc = {
        "name": "crash_dag",
        "version": "1",
        "tasks": {t.id: task_yaml(t) for t in TASKS},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return path


INSTANCES = {name: t for t in TASKS for name in instance_names(t)}
SKIPPED = {n for n, t in INSTANCES.items() if EXPECTED_STATUS[t.id] == "skipped"}
# Instances that run no script, so leave no side effect: a loop's iterations.
GROUPS = {n for n, t in INSTANCES.items() if t.body}


# -- worker processes ----------------------------------------------------------------------


class DagChild(Process):
    """A dag_child.py process."""

    def __init__(self, cfg: dict[str, Any], stderr_path: Path) -> None:
        super().__init__([sys.executable, str(CHILD_SCRIPT), json.dumps(cfg)], stderr_path)

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for a clean exit and return the DagResult the child printed."""
        result: dict[str, Any] = json.loads(self.last_line(timeout))
        return result


@contextmanager
def workers() -> Iterator[list[DagChild]]:
    """Every worker spawned into the list is killed (and reaped) when the block ends."""
    spawned: list[DagChild] = []
    try:
        yield spawned
    finally:
        for child in spawned:
            child.kill()


def spawn(spawned: list[DagChild], workdir: Path, name: str) -> DagChild:
    cfg = {
        "db": str(workdir / "db.sqlite"),
        "dag": str(workdir / "dag.yaml"),
        "effects": str(workdir / "effects.log"),
        "run_id": RUN,
        "lease_ttl": LEASE_TTL,
    }
    child = DagChild(cfg, workdir / f"{name}.stderr")
    spawned.append(child)
    return child


class Effect(NamedTuple):
    name: str
    pid: int


def read_effects(path: Path) -> list[Effect]:
    if not path.exists():
        return []
    # A line still being written has no newline yet: skip it.
    lines = path.read_text().split("\n")[:-1]
    return [Effect(name, int(pid)) for name, pid in (line.split() for line in lines)]


# -- reading the log -----------------------------------------------------------------------


@dataclass
class Instance:
    """What a log says about one step instance."""

    pos: int
    starts: list[tuple[int, int]] = field(default_factory=list)  # (seq, attempt)
    outcomes: list[tuple[int, str]] = field(default_factory=list)  # (seq, event type)

    @property
    def finished(self) -> bool:
        return bool(self.outcomes)

    @property
    def in_flight(self) -> bool:
        """Started, and that start has no outcome (yet)."""
        return bool(self.starts) and not self.outcomes


def instances(events: list[LoggedEvent]) -> dict[str, Instance]:
    names: dict[int, str] = {}
    out: dict[str, Instance] = {}
    for e in events:
        ev: Any = e.event
        if e.type in ("StepStarted", "StepSkipped"):
            assert names.setdefault(ev.pos, ev.name) == ev.name, (
                f"pos {ev.pos} is both {names[ev.pos]} and {ev.name}"
            )
            inst = out.setdefault(ev.name, Instance(ev.pos))
            assert inst.pos == ev.pos, f"{ev.name} at positions {inst.pos} and {ev.pos}"
        if e.type == "StepStarted":
            out[ev.name].starts.append((e.seq, ev.attempt))
        elif e.type == "StepSkipped":
            out[ev.name].outcomes.append((e.seq, e.type))
        elif e.type == "StepCompleted" or (e.type == "StepFailed" and not ev.retryable):
            assert ev.pos in names, f"seq {e.seq}: {e.type} of pos {ev.pos}, never started"
            out[names[ev.pos]].outcomes.append((e.seq, e.type))
    return out


def finished(seen: dict[str, Instance], name: str) -> bool:
    return name in seen and seen[name].finished


def check_final_log(events: list[LoggedEvent]) -> dict[str, Instance]:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1)), f"seqs not gap-free: {seqs}"
    types = [e.type for e in events]
    assert types[0] == "RunStarted", f"first event is {types[0]}"
    terminal = [t for t in types if t in ("RunCompleted", "RunFailed", "RunCancelled")]
    assert terminal == ["RunCompleted"] and types[-1] == "RunCompleted", f"terminal: {terminal}"
    failed: list[Any] = [e.event for e in events if e.type == "StepFailed"]
    assert not [ev for ev in failed if ev.retryable], "a retry, but no step has retries"
    found = instances(events)
    assert set(found) == set(INSTANCES), (
        f"instances: missing {sorted(set(INSTANCES) - set(found))}, "
        f"unexpected {sorted(set(found) - set(INSTANCES))}"
    )
    for name, inst in found.items():
        assert len(inst.outcomes) == 1, f"{name}: outcomes {inst.outcomes}"
        outcome_seq, outcome = inst.outcomes[0]
        after = [seq for seq, _ in inst.starts if seq > outcome_seq]
        assert not after, f"{name}: started again (seqs {after}) after its {outcome}"
        # An attempt cut short by a crash runs again under the same number.
        assert {a for _, a in inst.starts} <= {1}, f"{name}: attempts {inst.starts}"
        assert (outcome == "StepSkipped") == (name in SKIPPED), f"{name} ended {outcome}"
        assert bool(inst.starts) == (name not in SKIPPED), f"{name}: starts {inst.starts}"
    return found


# -- results -------------------------------------------------------------------------------


# What differs from run to run in a script's result: its duration and resources measured.
MEASURED = ("duration_seconds", "cpu_seconds", "max_rss_kb")


def strip_timing(value: Any) -> Any:
    """A script's result without what differs from run to run: its measured figures."""
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in MEASURED}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """A DagResult (as JSON) without run ids and timings."""
    steps = {}
    for sid, rep in result["steps"].items():
        steps[sid] = {
            "status": rep["status"],
            "result": strip_timing(rep.get("result")),
            "error": rep.get("error"),
            "skip_reason": rep.get("skip_reason"),
            "attempts": rep.get("attempts", 0),
            "instances": [
                {k: strip_timing(inst.get(k)) for k in ("name", "status", "matrix", "result")}
                | {"error": inst.get("error"), "attempts": inst.get("attempts", 0)}
                for inst in rep.get("instances", [])
            ],
        }
    keys = ("status", "completed_count", "failed_count", "skipped_count", "total_count")
    return (
        {k: result[k] for k in keys}
        | {"output": strip_timing(result.get("output"))}
        | {"steps": steps}
    )


# -- the test ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    index: int  # which worker (0 = the first spawned)
    pid: int
    snapshot: Snapshot

    def log(self) -> list[LoggedEvent]:
        return self.snapshot.logs.get(RUN, [])


@pytest.mark.slow
def test_dag_kill_at_random_moments(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(2**32)))
    print(f"crash seed: {seed} (rerun with CRASH_SEED={seed})")
    rng = random.Random(seed)
    crashed, reference_dir = tmp_path / "crashed", tmp_path / "reference"
    for d in (crashed, reference_dir):
        d.mkdir()
        write_dag(d / "dag.yaml")
    assert len(TASKS) >= 30
    effects_path = crashed / "effects.log"
    kills: list[Kill] = []
    with workers() as spawned:
        reference = spawn(spawned, reference_dir, "reference")  # crash-free, meanwhile
        victims: list[DagChild] = []
        result: dict[str, Any] | None = None
        for i in range(KILLS):
            child = spawn(spawned, crashed, f"victim{i}")
            victims.append(child)
            deadline = choose_deadline(
                rng,
                child,
                lambda pid: any(e.pid == pid for e in read_effects(effects_path)),
                lease_ttl=LEASE_TTL,
                timeout=PROGRESS_TIMEOUT,
                seed=seed,
            )
            while time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.005)
            if child.poll() is not None:  # it finished the run before its moment came
                result = child.result(CHILD_TIMEOUT)
                break
            child.kill()
            kills.append(Kill(i, child.pid, read_snapshot(crashed / "db.sqlite")))
        if result is None:
            survivor = spawn(spawned, crashed, "survivor")
            victims.append(survivor)
            result = survivor.result(CHILD_TIMEOUT)
        expected = reference.result(CHILD_TIMEOUT)
    where = f"(seed {seed})"
    assert len(kills) >= 3, f"only {len(kills)} kills landed before the run finished {where}"

    # The crash-free run: in reasonable time, with the statuses the definition calls for.
    assert expected["duration_seconds"] < REFERENCE_MAX_SECONDS, expected["duration_seconds"]
    statuses = {sid: rep["status"] for sid, rep in expected["steps"].items()}
    assert statuses == EXPECTED_STATUS
    assert expected["status"] == "partial"
    ref_effects = Counter(e.name for e in read_effects(reference_dir / "effects.log"))
    assert ref_effects == Counter(set(INSTANCES) - SKIPPED - GROUPS), ref_effects

    # The crashed run's log.
    final_log = read_snapshot(crashed / "db.sqlite").logs[RUN]
    final = check_final_log(final_log)
    final_encoded = [encoded(e) for e in final_log]
    for kill in kills:
        before = [encoded(e) for e in kill.log()]
        assert final_encoded[: len(before)] == before, (
            f"events durable when worker {kill.index} (pid {kill.pid}) was killed changed "
            f"afterwards {where}"
        )
        at_kill = instances(kill.log())
        for name, inst in at_kill.items():
            if inst.in_flight:
                # Cut short: the instance must have been started again by a later worker.
                again = [seq for seq, _ in final[name].starts if seq > len(before)]
                assert again, f"{name} in flight at kill {kill.index}, never restarted {where}"

    # The side effects.
    effects = read_effects(effects_path)
    index_of = {child.pid: i for i, child in enumerate(victims)}
    unknown = {e.pid for e in effects} - set(index_of)
    assert not unknown, f"side effects from processes that are not the run's workers: {unknown}"
    stray = {e.name for e in effects} - set(INSTANCES)
    assert not stray, f"side effects of unknown instances: {stray}"
    logged = [instances(k.log()) for k in kills]  # what the log said at each kill
    in_flight: Counter[str] = Counter()
    for name in INSTANCES:
        by_worker = Counter(index_of[e.pid] for e in effects if e.name == name)
        assert all(n == 1 for n in by_worker.values()), (
            f"{name}: a worker ran it twice: {dict(by_worker)} {where}"
        )
        done_at = [k.index for k, seen in zip(kills, logged, strict=True) if finished(seen, name)]
        if done_at:
            later = sorted(w for w in by_worker if w > done_at[0])
            assert not later, (
                f"{name}: its outcome was durable when worker {done_at[0]} was killed, but "
                f"workers {later} ran it again {where}"
            )
        cut = [
            k
            for k, seen in zip(kills, logged, strict=True)
            if k.index in by_worker and not finished(seen, name)
        ]
        in_flight[name] = len(cut)
        for k in cut:
            # The execution the kill cut short: the log must show it started again afterwards.
            again = [seq for seq, _ in final[name].starts if seq > len(k.log())]
            assert again, f"{name} ran in worker {k.index}, not restarted after its kill {where}"
        runs = sum(by_worker.values())
        expected_runs = 0 if name in SKIPPED | GROUPS else 1 + len(cut)
        assert runs == expected_runs, (
            f"{name}: ran {runs} times (workers {sorted(by_worker)}), expected {expected_runs}: "
            f"in flight at the kills of workers {[k.index for k in cut]} {where}"
        )

    # The results: those of the crash-free run.
    assert result["status"] == expected["status"]
    got, want = outcome(result), outcome(expected)
    for sid in want["steps"]:
        assert got["steps"][sid] == want["steps"][sid], f"step {sid} differs {where}"
    assert got == want, f"the run's outcome differs from the crash-free run {where}"

    repeated = sum(in_flight.values())
    by_log = sum(inst.in_flight for seen in logged for inst in seen.values())
    print(
        f"{len(kills)} kills; {repeated} step executions were cut short and ran again; "
        f"{by_log} instances were started and unfinished in the log at a kill"
    )
    assert repeated + by_log >= 1, f"no kill landed while a step was running {where}"
