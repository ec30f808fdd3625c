"""DAG runs on the durable engine: per-task overhead, fan-out, JavaScript steps, and peers.

    python benchmarks/dag.py                  # medians of 3
    python benchmarks/dag.py --quick          # one repetition, smaller peer chains
    python benchmarks/dag.py --json PATH      # also write the figures
    python benchmarks/dag.py --profile PATH   # also cProfile one extra 1,000-task chain run

Every durable measurement opens a fresh App on a fresh SQLite file in one temp directory
(WAL, synchronous=FULL, the engine's defaults), runs a small DAG of the same kind first
(warm-up: the database, the worker and, for JavaScript, the sandbox pool, which starts on
the first JavaScript step), then times `app.run_dag()` with time.perf_counter.

(1) chain: 1,000 no-op tasks from generated YAML, each depending on the one before.
(2) fan-out: one root, 1,000 independent no-op tasks depending on it, one sink after all.
(3) JavaScript: a chain of JS steps (`return 1;`, Python builder) minus the same chain of
    no-op steps, per step: the cost of a JS step, sandbox hop and a fresh V8 runtime
    included. Peer, in this run: seed 000's own approach, a jsrun Runtime created in this
    process per step, bound and eval_async'd, with nothing durable.
(4) a real process per task: a chain of `script: "true"` steps on durable; peer, in this
    run: python-script-runner (seed 002's engine, from PyPI into its own venv) on the same
    chain, and with a no-op executor (its engine alone). Seed 002 states ~100 ms per task.

The script checks what it measures: a run that does not succeed, or whose counts are not
the DAG's, makes it exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import bench_common as bc
import psr_venv
from jsrun import Runtime, RuntimeConfig

from durable.dag import DagDefinition, DagResult, parse_definition
from sdk import App

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

# The targets.
CHAIN_MAX_MS = 1.0  # engine overhead per chained no-op task
JS_MAX_MS = 30.0  # JavaScript step overhead, sandbox hop and fresh V8 runtime included
SEED_002_TASK_MS = 100.0  # "Task startup time ~100ms" (seed 002's performance table)


@dataclass(frozen=True)
class Sizes:
    chain: int
    fanout: int
    js: int
    process: int  # the real-process-per-task chains (durable and python-script-runner)
    repeats: int


FULL = Sizes(chain=1000, fanout=1000, js=50, process=100, repeats=3)
QUICK = Sizes(chain=1000, fanout=1000, js=20, process=20, repeats=1)


@dataclass
class Measured:
    """One scenario's repetitions; `seconds` is the timed wall time of each."""

    label: str
    tasks: int
    seconds: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    commits: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def per_task_ms(self) -> float:
        return self.median_s * 1000 / self.tasks


class BenchFailure(Exception):
    pass


# -- definitions -------------------------------------------------------------------------


def chain_yaml(name: str, n: int, script: str | None = None) -> str:
    body = "" if script is None else f"script: {json.dumps(script)}"
    lines = [f"name: {name}", "tasks:"]
    for i in range(n):
        parts = [p for p in (body, f"depends_on: [t{i - 1}]" if i else "") if p]
        lines.append(f"  t{i}: {{{', '.join(parts)}}}")
    return "\n".join(lines) + "\n"


def fanout_yaml(name: str, n: int) -> str:
    lines = [f"name: {name}", "tasks:", "  root: {}"]
    lines += [f"  w{i}: {{depends_on: [root]}}" for i in range(n)]
    lines.append("  sink:")
    lines.append("    depends_on:")
    lines += [f"      - w{i}" for i in range(n)]
    return "\n".join(lines) + "\n"


def js_chain(app: App, name: str, n: int) -> str:
    flow = app.dag(name)
    prev = None
    for i in range(n):
        prev = flow.js(f"s{i}", "return 1;", depends=[prev] if prev else None)
    return app.register_dag(flow)


def yaml_dag(app: App, text: str, file: str) -> str:
    definition: DagDefinition = parse_definition(text, file)
    return app.register_dag(definition)


# -- the durable runs ----------------------------------------------------------------------


def _commit_stats(app: App) -> tuple[int, int]:
    stats = getattr(app.engine.store, "commit_stats", (0, 0))
    return int(stats[0]), int(stats[1])


def check(result: DagResult, tasks: int, what: str) -> None:
    if (
        result.status != "succeeded"
        or result.completed_count != tasks
        or result.total_count != tasks
    ):
        raise BenchFailure(
            f"{what}: status {result.status}, {result.completed_count}/{result.total_count} "
            f"completed, expected {tasks}/{tasks}; error: {result.error}"
        )


Setup = Callable[[App], tuple[str, int, str, int]]  # -> (warm-up dag, tasks, timed dag, tasks)


async def measure_durable(
    db: Path, setup: Setup, m: Measured, profile: cProfile.Profile | None = None
) -> None:
    """One repetition: fresh app on `db`, warm-up run, then the timed run."""
    app = App(f"sqlite:///{db}")
    warm, warm_tasks, timed, tasks = setup(app)
    async with app:
        check(await app.run_dag(warm), warm_tasks, f"{m.label} (warm-up)")
        commits0, writes0 = _commit_stats(app)
        if profile is not None:
            profile.enable()
        start = time.perf_counter()
        result = await app.run_dag(timed)
        elapsed = time.perf_counter() - start
        if profile is not None:
            profile.disable()
        commits1, writes1 = _commit_stats(app)
        check(result, tasks, m.label)
        m.seconds.append(elapsed)
        m.commits.append(commits1 - commits0)
        m.writes.append(writes1 - writes0)
        m.events.append(len(await app.events(result.run_id)))


def chain_setup(n: int, script: str | None = None) -> Setup:
    def setup(app: App) -> tuple[str, int, str, int]:
        warm = yaml_dag(app, chain_yaml("warm", 10, script), "warm.yaml")
        return warm, 10, yaml_dag(app, chain_yaml("chain", n, script), "chain.yaml"), n

    return setup


def fanout_setup(n: int) -> Setup:
    def setup(app: App) -> tuple[str, int, str, int]:
        warm = yaml_dag(app, fanout_yaml("warm", 10), "warm.yaml")
        return warm, 12, yaml_dag(app, fanout_yaml("fanout", n), "fanout.yaml"), n + 2

    return setup


def js_setup(n: int) -> Setup:
    def setup(app: App) -> tuple[str, int, str, int]:
        return js_chain(app, "warm", 2), 2, js_chain(app, "js_chain", n), n

    return setup


# -- seed 000's approach: a jsrun Runtime per step, in this process ------------------------


async def seed000_chain(n: int) -> float:
    """Seed 000's StepBuilder body, step after step: fresh Runtime, bind, eval_async."""
    context: dict[str, Any] = {"event": {}, "config": {}}
    code = "return 1;"
    deps: dict[str, Any] = {}
    start = time.perf_counter()
    for i in range(n):
        with Runtime(RuntimeConfig(max_heap_size=50 * 1024 * 1024)) as runtime:
            runtime.bind_object("deps", deps)
            runtime.bind_object("ctx", context)
            result = await runtime.eval_async(f"(async () => {{ {code} }})()", timeout=5.0)
        if result != 1:
            raise BenchFailure(f"seed 000 approach: step {i} returned {result!r}, not 1")
        deps = {f"s{i}": result}
    return time.perf_counter() - start


# -- python-script-runner, in its own venv -------------------------------------------------


@dataclass
class Peer:
    available: bool
    note: str
    version: str | None = None
    process: Measured | None = None
    noop: Measured | None = None


def measure_psr(sizes: Sizes, venv: Path, skip: bool) -> Peer:
    if skip:
        return Peer(False, "skipped (--no-peer)")
    try:
        python = psr_venv.ensure_psr_venv(venv)
    except (OSError, subprocess.SubprocessError) as exc:
        return Peer(False, f"could not install {psr_venv.PSR_REQUIREMENT}: {exc}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    argv = [str(python), str(BENCH_DIR / "dag_psr.py"), "--tasks", str(sizes.process)]
    argv += ["--repeats", str(sizes.repeats)]
    proc = subprocess.run(
        argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(bc.RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise BenchFailure(f"python-script-runner exited {proc.returncode}:\n{tail}")
    data = json.loads(lines[-1].removeprefix(bc.RESULT_PREFIX))
    n = int(data["tasks"])
    label = "python-script-runner"
    return Peer(
        True,
        "runners.workflows WorkflowParser.parse_file + WorkflowEngine().run_workflow(dag)",
        str(data["info"]["python_script_runner"]),
        Measured(f"{label}, `true` per task", n, [float(s) for s in data["process_seconds"]]),
        Measured(f"{label}, no-op executor", n, [float(s) for s in data["noop_seconds"]]),
    )


# -- report --------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _row(label: str, value: str, extra: str = "") -> str:
    return f"    {label:<48}{value:>14}   {extra}".rstrip()


def render(
    sizes: Sizes,
    results: dict[str, Measured],
    seed000: Measured,
    peer: Peer,
    elapsed: float,
    tmp: str,
) -> tuple[str, dict[str, Any]]:
    chain, fan, js, js_noop, proc = (
        results[k] for k in ("chain", "fanout", "js", "js_noop", "process")
    )
    js_ms = (js.median_s - js_noop.median_s) * 1000 / js.tasks
    ratio_seed = seed000.per_task_ms / js_ms if js_ms > 0 else float("inf")
    how = f"median of {sizes.repeats}" if sizes.repeats > 1 else "1 repetition"
    out = [
        f"DAG benchmark, SQLite file (WAL, synchronous=FULL) in {tmp}, {how}",
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, {elapsed:.0f} s in all",
        "",
        f"(1) chain of {chain.tasks:,} no-op tasks (YAML)",
        _row("wall time", f"{chain.median_s:.3f} s"),
        _row("engine overhead per chained task", f"{chain.per_task_ms:.3f} ms", "target <= 1 ms"),
        _row("tasks/s", f"{chain.tasks / chain.median_s:,.0f}"),
        _row(
            "events / commits (writes) in the run",
            f"{statistics.median(chain.events):,.0f} / {statistics.median(chain.commits):,.0f}",
            f"({statistics.median(chain.writes):,.0f} writes)",
        ),
        "",
        f"(2) fan-out: root, {fan.tasks - 2:,} independent no-op tasks, sink",
        _row("wall time", f"{fan.median_s:.3f} s"),
        _row("per task", f"{fan.per_task_ms:.3f} ms"),
        _row("tasks/s", f"{fan.tasks / fan.median_s:,.0f}"),
        _row(
            "events / commits (writes) in the run",
            f"{statistics.median(fan.events):,.0f} / {statistics.median(fan.commits):,.0f}",
            f"({statistics.median(fan.writes):,.0f} writes)",
        ),
        "",
        f"(3) JavaScript steps: chain of {js.tasks} `return 1;` steps vs {js.tasks} no-op steps",
        _row("durable JS chain, per step", f"{js.per_task_ms:.2f} ms"),
        _row("durable no-op chain, per step", f"{js_noop.per_task_ms:.2f} ms"),
        _row("durable JS step overhead (difference)", f"{js_ms:.2f} ms", "target <= 30 ms"),
        _row(
            "seed 000: in-process jsrun Runtime per step",
            f"{seed000.per_task_ms:.2f} ms",
            "(no sandbox process, nothing durable)",
        ),
        _row(
            "durable JS overhead / seed 000 per step",
            f"{js_ms / seed000.per_task_ms:.2f}x",
            f"(seed 000 / durable: {ratio_seed:.2f}x)",
        ),
        "",
        "(4) a real process per task (chain, `true` per task)",
        _row(f'durable, script: "true" x {proc.tasks}', f"{proc.per_task_ms:.2f} ms/task"),
    ]
    payload: dict[str, Any] = {
        "sizes": asdict(sizes),
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
        },
        "scenarios": {k: {**asdict(m), "median_s": m.median_s} for k, m in results.items()},
        "seed000_js": {**asdict(seed000), "median_s": seed000.median_s},
        "chain_overhead_ms_per_task": chain.per_task_ms,
        "fanout_ms_per_task": fan.per_task_ms,
        "fanout_tasks_per_s": fan.tasks / fan.median_s,
        "js_overhead_ms_per_step": js_ms,
        "seed000_ms_per_step": seed000.per_task_ms,
        "durable_process_ms_per_task": proc.per_task_ms,
        "seed002_stated_ms_per_task": SEED_002_TASK_MS,
        "python_script_runner": {"available": peer.available, "note": peer.note},
    }
    if peer.process is not None and peer.noop is not None:
        p, q = peer.process, peer.noop
        out += [
            _row(
                f"python-script-runner {peer.version}, `true` x {p.tasks}",
                f"{p.per_task_ms:.2f} ms/task",
                f"durable is {p.per_task_ms / proc.per_task_ms:.1f}x faster",
            ),
            _row(
                "python-script-runner, no-op executor",
                f"{q.per_task_ms:.2f} ms/task",
                f"vs durable no-op chain: {q.per_task_ms / chain.per_task_ms:,.0f}x",
            ),
        ]
        payload["python_script_runner"].update(
            version=peer.version,
            process=asdict(p),
            noop=asdict(q),
            process_ms_per_task=p.per_task_ms,
            noop_ms_per_task=q.per_task_ms,
        )
    else:
        out.append(_row("python-script-runner", "n/a", peer.note))
    out += [
        _row(
            "seed 002 document's stated task startup",
            f"~{SEED_002_TASK_MS:.0f} ms/task",
            f"durable (real process) is {SEED_002_TASK_MS / proc.per_task_ms:.1f}x faster, "
            f"no-op {SEED_002_TASK_MS / chain.per_task_ms:,.0f}x",
        ),
    ]
    if peer.available:
        out.append(
            f"    ({peer.note}; the package imports as runners.workflows, not the "
            "document's runner.workflows)"
        )
    targets = {
        "chain_overhead": chain.per_task_ms <= CHAIN_MAX_MS,
        "js_overhead": js_ms <= JS_MAX_MS,
    }
    out += [
        "",
        f"targets: chain overhead <= {CHAIN_MAX_MS:g} ms/task "
        f"{_verdict(targets['chain_overhead'])} "
        f"({chain.per_task_ms:.3f} ms); JS step overhead <= {JS_MAX_MS:g} ms "
        f"{_verdict(targets['js_overhead'])} ({js_ms:.2f} ms)",
    ]
    payload["targets"] = targets
    return "\n".join(out), payload


# -- driver --------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller peers")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--repeats", type=int, help="repetitions per measurement")
    parser.add_argument("--tmpdir", type=Path, help="where SQLite files go (default: $TMPDIR)")
    parser.add_argument("--psr-venv", type=Path, default=psr_venv.default_venv_dir())
    parser.add_argument("--no-peer", action="store_true", help="skip python-script-runner")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="cProfile one extra (untimed) chain run into PATH",
    )
    return parser.parse_args()


def _progress(m: Measured) -> None:
    print(f"  {m.label:<44} {m.seconds[-1]:8.3f} s", file=sys.stderr, flush=True)


def _remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


async def run_all(
    sizes: Sizes, tmp: Path, profile: cProfile.Profile | None
) -> tuple[dict[str, Measured], Measured]:
    plan: list[tuple[str, Setup]] = [
        ("chain", chain_setup(sizes.chain)),
        ("fanout", fanout_setup(sizes.fanout)),
        ("js", js_setup(sizes.js)),
        ("js_noop", chain_setup(sizes.js)),
        ("process", chain_setup(sizes.process, "true")),
    ]
    tasks = {
        "chain": sizes.chain,
        "fanout": sizes.fanout + 2,
        "js": sizes.js,
        "js_noop": sizes.js,
        "process": sizes.process,
    }
    labels = {
        "chain": f"durable chain x {sizes.chain} (no-op)",
        "fanout": f"durable fan-out 1 -> {sizes.fanout} -> 1 (no-op)",
        "js": f"durable JS chain x {sizes.js}",
        "js_noop": f"durable no-op chain x {sizes.js}",
        "process": f'durable script: "true" chain x {sizes.process}',
    }
    results = {k: Measured(labels[k], tasks[k]) for k in tasks}
    seed000 = Measured(f"seed 000 jsrun Runtime per step x {sizes.js}", sizes.js)
    n = 0
    for rep in range(sizes.repeats):
        print(f"repetition {rep + 1}/{sizes.repeats}", file=sys.stderr, flush=True)
        # Alternate the order between repetitions: a disk that speeds up or slows down
        # mid-run then favours no scenario.
        for key, setup in plan if rep % 2 == 0 else plan[::-1]:
            n += 1
            db = tmp / f"{n:03d}-{key}.db"
            await measure_durable(db, setup, results[key])
            _progress(results[key])
            _remove_db(db)
        await seed000_chain(2)  # warm-up: V8 platform init and the first isolate
        seed000.seconds.append(await seed000_chain(sizes.js))
        _progress(seed000)
    if profile is not None:
        # An extra chain run under the profiler, kept out of the figures (it slows them).
        extra = Measured("durable chain, profiled (not in the figures)", sizes.chain)
        await measure_durable(tmp / "profiled-chain.db", chain_setup(sizes.chain), extra, profile)
        _progress(extra)
    return results, seed000


def _profile_report(profile: cProfile.Profile, path: Path) -> None:
    profile.dump_stats(str(path))
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    print(f"\ncProfile of one extra chain run (saved to {path}), by own time:", file=sys.stderr)
    print(text.getvalue(), file=sys.stderr)


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = replace(sizes, repeats=max(1, args.repeats))
    profile = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="durable-dag-bench-", dir=args.tmpdir) as tmp:
            results, seed000 = asyncio.run(run_all(sizes, Path(tmp), profile))
            print("python-script-runner (own venv, own process)...", file=sys.stderr, flush=True)
            peer = measure_psr(sizes, args.psr_venv, args.no_peer)
            text, payload = render(
                sizes, results, seed000, peer, time.perf_counter() - started, tmp
            )
    except BenchFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(text, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if profile is not None and args.profile is not None:
        _profile_report(profile, args.profile)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
