"""What resuming a run costs as its history grows (issue 17: 100k events in <= 1 s, linear).

    python benchmarks/recovery_cost.py                        # 1k, 10k, 100k events, SQLite
    python benchmarks/recovery_cost.py --quick                # 1k and 10k only
    python benchmarks/recovery_cost.py --backend postgresql   # a throwaway server (pg_server)
    python benchmarks/recovery_cost.py --profile 100000       # cProfile of one recovery

The logs are synthesised, not executed: events built by the engine's own encoding
(encode_event, encode_value) and stored in one transaction by the real store
(Store.create_run(new, first, history=...)), for two workflows registered here whose code
matches them: `sequential` (StepStarted/StepCompleted per step, replay_cost.py's workflow) and
`signal_loop` (WaitStarted/SignalReceived/WaitCompleted per signal). Each log stops where the
code wants one more command, so recovery ends at its first live command. Two DAG rows
(recovery_dag.py): `dag_full` folds a DAG run's whole log, `dag_snapshot` reads its snapshot
and folds the events after it.

Each measurement runs in a fresh subprocess (cold: no cache, nothing imported lazily yet
counted against the phases, since the imports happen before the clock starts) and times the
worker's path (Worker._resume, then the executor) phase by phase: read (store.read_history:
the query, checksums, records), fold (durable._recovery.fold_records: each record decoded and
folded by durable._state.apply; these two with the cyclic collector paused, as
durable._recovery.load_state does), replay (RunExecutor with the registered workflow,
re-executing the code against the log until it asks for what the log does not hold: the first
live command), and the total. Median of `--repeats` subprocesses; the ratios of successive
sizes (10x more events) should be ~10 if recovery is linear. Not a test: the figures depend on
the machine.

Left out: what the worker does around this path and costs the same at any size (the claim, the
inbox read, RunLog's construction) and the first live command itself (a live signal wait's
match sorts the run's signals once: Waits._match_signal).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pg_server
import recovery_dag
from replay_cost import build as build_replay_workflows

from durable._codec import encode_value
from durable._events import (
    Event,
    RunStarted,
    SignalReceived,
    StepCompleted,
    StepStarted,
    WaitCompleted,
    WaitStarted,
    encode_event,
)
from durable._gcpause import gc_paused
from durable._recovery import fold_records
from durable.runtime._executor import RunExecutor
from durable.runtime._registry import WorkflowDef
from sdk import App, Context
from storage import EventRecord, NewRun, open_store

PHASES = ("read", "fold", "replay", "total")
WORKFLOWS = ("sequential", "signal_loop", *recovery_dag.DAG_ROWS)


def build(app: App) -> dict[str, WorkflowDef]:
    """The workflows whose code matches the synthesised logs (same in parent and child)."""
    sequential, _chains = build_replay_workflows(app)

    @app.workflow
    async def signal_loop(ctx: Context, n: int) -> int:
        total = 0
        for _ in range(n):
            total += await ctx.wait_for_signal("tick", type=int)
        return total

    return {
        "sequential": app.registry.workflow(sequential),
        "signal_loop": app.registry.workflow(signal_loop),
    }


def synthesise(workflow: str, events: int) -> tuple[int, list[Event]]:
    """(the workflow's input, the events after RunStarted) of a log of about `events` events
    that stops where the code wants its next command."""
    body: list[Event] = []
    if workflow == "sequential":
        done = (events - 1) // 2
        for pos in range(done):
            args = encode_value([[pos], {}], "step arguments", wrapping=2)
            body.append(StepStarted(pos=pos, name="work", attempt=1, input=msgspec.Raw(args)))
            body.append(StepCompleted(pos=pos, result=msgspec.Raw(encode_value(pos + 1, "r"))))
    else:
        done = (events - 1) // 3
        for pos in range(done):
            seq = 1 + len(body) + 2  # the SignalReceived's seq (RunStarted is seq 1)
            body.append(WaitStarted(pos=pos, signal="tick"))
            payload = msgspec.Raw(encode_value(pos, "signal payload"))
            body.append(SignalReceived(name="tick", payload=payload, inbox_id=pos + 1))
            body.append(WaitCompleted(pos=pos, signal_seq=seq))
    return done + 1, body  # one more than the log holds: the first live command


async def store_log(url: str, wf: WorkflowDef, events: int) -> tuple[str, int, int]:
    """Write a synthesised run into the store: (run id, events, positions replay must use)."""
    n, body = synthesise(wf.name, events)
    run_id = uuid.uuid4().hex
    now = time.time()
    data = encode_value(n, "input")
    started = RunStarted(
        workflow=wf.name, version=wf.version, input=msgspec.Raw(data), fingerprint=wf.fingerprint
    )
    records = [EventRecord(run_id, 1, "RunStarted", encode_event(started), now)]
    for i, event in enumerate(body, start=2):
        records.append(
            EventRecord(run_id, i, type(event).__name__, encode_event(event), now + i * 1e-6)
        )
    new = NewRun(run_id=run_id, workflow=wf.name, version=wf.version, input=data, created_at=now)
    store = open_store(url)
    await store.open()
    try:
        _, created = await store.create_run(new, records[0], history=records[1:])
        assert created
    finally:
        await store.close()
    return run_id, len(records), n


async def recover(url: str, run_id: str, wf: WorkflowDef, app: App) -> dict[str, float]:
    """The worker's recovery path, timed phase by phase."""
    store = open_store(url)
    await store.open()
    try:
        began = time.perf_counter()
        with gc_paused():  # as durable._recovery.load_state, the worker's path
            records = await store.read_history(run_id)
            read = time.perf_counter()
            state = fold_records(run_id, records)
            folded = time.perf_counter()
        del records
        executor = RunExecutor(state, wf, None, registry=app.registry)
        await executor.start()
        replayed = time.perf_counter()
    finally:
        await store.close()
    if executor.fatal is not None or not executor.reached_end_of_history:
        sys.exit(f"the replay did not reach the end of the log: {executor.fatal}")
    return {
        "read": read - began,
        "fold": folded - read,
        "replay": replayed - folded,
        "total": replayed - began,
        "positions": executor.positions_used,
    }


def child(url: str, run_id: str, workflow: str, profile: bool) -> None:
    app = App(url)

    def once() -> dict[str, float]:
        if workflow in recovery_dag.DAG_ROWS:
            snapshot = workflow == "dag_snapshot"
            return asyncio.run(recovery_dag.recover(url, run_id, snapshot))
        return asyncio.run(recover(url, run_id, build(app)[workflow], app))

    if not profile:
        print(json.dumps(once()))
        return
    profiler = cProfile.Profile()
    profiler.enable()
    figures = once()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(15)
    stats.sort_stats("tottime").print_stats(15)  # the cumulative top is mostly asyncio frames
    print(f"{workflow}: {figures['positions']:.0f} positions, total {figures['total']:.3f} s")
    print(out.getvalue())


def measure_once(url: str, run_id: str, workflow: str, profile: bool = False) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", url, run_id, workflow]
    if profile:
        subprocess.run([*cmd, "--profile-child"], check=True, env=os.environ.copy())
        return {}
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run(url: str, label: str, sizes: list[int], workflows: list[str], repeats: int) -> None:
    app = App(url)
    defs = build(app)
    print(f"\n{label}: median of {repeats} fresh processes, seconds per phase")
    print("(an 'x prev' row: each phase's time over the previous size's; linear: the size ratio)")
    header = "".join(f"{p + ' (s)':>12}" for p in PHASES)
    print(f"{'workflow':<13}{'events':>9}{header}{'events/s':>12}")
    for name in workflows:
        previous: dict[str, float] | None = None
        for size in sizes:
            if name in recovery_dag.DAG_ROWS:
                run_id, count, positions = asyncio.run(recovery_dag.store_log(url, size))
            else:
                run_id, count, positions = asyncio.run(store_log(url, defs[name], size))
            samples = [measure_once(url, run_id, name) for _ in range(repeats)]
            if any(s["positions"] != positions for s in samples):
                sys.exit(f"{name}: the replay used other positions than the log's: {samples}")
            med = {p: statistics.median(s[p] for s in samples) for p in PHASES}
            cells = "".join(f"{med[p]:>12.3f}" for p in PHASES)
            print(f"{name:<13}{count:>9,}{cells}{count / med['total']:>12,.0f}")
            if previous is not None:
                ratios = "".join(f"{med[p] / max(previous[p], 1e-9):>12.1f}" for p in PHASES)
                print(f"{'':<13}{'x prev':>9}{ratios}")
            previous = med


def profile(url: str, size: int, workflows: list[str]) -> None:
    defs = build(App(url))
    for name in workflows:
        if name in recovery_dag.DAG_ROWS:
            run_id, _, _ = asyncio.run(recovery_dag.store_log(url, size))
        else:
            run_id, _, _ = asyncio.run(store_log(url, defs[name], size))
        measure_once(url, run_id, name, profile=True)


@contextmanager
def postgres(given: str | None) -> Iterator[str]:
    with pg_server.admin_url(given) as admin:
        db = f"recovery_{uuid.uuid4().hex[:8]}"
        asyncio.run(pg_server.create_database(admin, db))
        try:
            yield pg_server.with_database(admin, db)
        finally:
            asyncio.run(pg_server.drop_database(admin, db))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], profile="--profile-child" in sys.argv)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--quick", action="store_true", help="1k and 10k events only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workflow", choices=[*WORKFLOWS, "all"], default="all")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--pg-url", default=None, help=f"default: ${pg_server.URL_ENV}")
    parser.add_argument(
        "--profile", type=int, metavar="EVENTS", help="cProfile one recovery of that size instead"
    )
    args = parser.parse_args()
    sizes = [1000, 10000] if args.quick else args.sizes
    workflows = list(WORKFLOWS) if args.workflow == "all" else [args.workflow]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPUs")
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'recovery.db'}"
                if args.profile:
                    profile(url, args.profile, workflows)
                else:
                    run(url, "SQLite file", sizes, workflows, args.repeats)
                continue
            given = args.pg_url or os.environ.get(pg_server.URL_ENV) or None
            with postgres(given) as url:
                if args.profile:
                    profile(url, args.profile, workflows)
                else:
                    run(url, "PostgreSQL", sizes, workflows, args.repeats)


if __name__ == "__main__":
    main()
