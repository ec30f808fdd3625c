"""Queues on PostgreSQL: durable against DBOS Transact's queues, measured in the same run.

    python benchmarks/queues_bench.py               # the full sizes (about 3 minutes)
    python benchmarks/queues_bench.py --quick       # small sizes, 50 ms polls only (< 1 min)
    python benchmarks/queues_bench.py --json PATH   # also write the figures
    python benchmarks/queues_bench.py --pg-url URL  # an existing server (user with CREATEDB)

One PostgreSQL server (a throwaway one started for the run, fsync on, as run.py's; or --pg-url /
$DURABLE_BENCH_PG_URL), a fresh database on it for every measurement process; each engine runs
in a fresh process of its own (queues_durable.py: an App with its in-process worker; and
queues_dbos.py: DBOS 3.4.0 from the benchmark's private venv, its system database on that
server). Both engines find work in a queue by polling (DBOS: every 1 s by default; durable: on
LISTEN/NOTIFY, and every 5 s by default), so each is measured twice: with its default poll and
with a 50 ms one (--short-poll).

(1) dispatch overhead: no-op runs one at a time, plain and queued alternately (a queue with no
    limits), from before the start call to the result: queued minus plain, medians.
(5) the start call alone, from the same loop: app.start(queue=...) against app.start(...), and
    DBOS's queue.enqueue against DBOS.start_workflow.
(2) a queue of concurrency 10, runs of one 50 ms step: runs/s draining a full backlog, against
    10 / 0.05 s = 200/s.
(3) a queue limited to 50 admissions per 2 s: admissions/s against 25/s, and the most admitted
    in any 2 s window (from the times each engine recorded), which must not exceed 50.
(4) fairness: 1,000 runs of one tenant queued, then 5 of another, concurrency 10: the small
    tenant's wait (p99, max) from the moment the backlog starts draining to its step.

Figures, not targets: on a shared 2-core machine, compare the engines within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_common as bc
import dbos_venv
import pg_server
import queues_report

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
JOB_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Sizes:
    overhead: int  # no-op runs each way (plain, queued)
    # DBOS at its default poll: each queued run waits for the poll (about 1 s). Durable's
    # queued start wakes its worker at once, so it keeps `overhead` at any poll.
    overhead_slow: int
    concurrency: int
    concurrency_slow: int
    rate_runs: int
    rate_limit: int
    rate_period: float
    big: int
    small: int
    warmup: int


FULL = Sizes(50, 10, 200, 40, 150, 50, 2.0, 1000, 5, 5)
QUICK = Sizes(10, 3, 40, 20, 40, 20, 1.0, 200, 3, 2)


@dataclass
class Job:
    engine: str  # "durable" or "dbos"
    scenario: str
    poll: float | None  # None: the engine's default
    args: list[str]
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def plan(sizes: Sizes, engines: list[str], polls: list[float | None]) -> list[Job]:
    jobs = []
    for scenario in ("overhead", "concurrency", "rate", "fairness"):
        for poll in polls:
            for engine in engines:
                slow = poll is None
                args = ["--scenario", scenario, "--warmup", str(sizes.warmup)]
                if scenario == "overhead":
                    dbos_slow = slow and engine == "dbos"
                    args += ["--runs", str(sizes.overhead_slow if dbos_slow else sizes.overhead)]
                elif scenario == "concurrency":
                    n = sizes.concurrency_slow if slow else sizes.concurrency
                    args += ["--runs", str(n), "--concurrency", "10", "--step-ms", "50"]
                elif scenario == "rate":
                    args += ["--runs", str(sizes.rate_runs), "--limit", str(sizes.rate_limit)]
                    args += ["--period", str(sizes.rate_period), "--step-ms", "1"]
                else:
                    args += ["--runs", str(sizes.big), "--small", str(sizes.small)]
                    args += ["--concurrency", "10", "--step-ms", "50"]
                args += [] if poll is None else ["--poll", str(poll)]
                jobs.append(Job(engine, scenario, poll, args))
    return jobs


def _env(durable: bool) -> dict[str, str]:
    env = dict(os.environ)
    caller = env.pop("PYTHONPATH", "")
    if durable:
        # The caller's PYTHONPATH first, so that a branch's work tree can be measured.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (caller, str(REPO_ROOT)) if p)
    return env  # DBOS's process sees nothing of the project


def execute(job: Job, python: str, db: str) -> None:
    script = BENCH_DIR / f"queues_{job.engine}.py"
    cmd = [python, str(script), *job.args, "--db", db]
    try:
        proc = subprocess.run(
            cmd,
            env=_env(job.engine == "durable"),
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        job.error = f"timed out after {JOB_TIMEOUT_S:.0f} s"
        return
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(bc.RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        job.error = f"exit code {proc.returncode}:\n{tail}"
        return
    job.result = json.loads(lines[-1].removeprefix(bc.RESULT_PREFIX))


def over_limit(job: Job, sizes: Sizes) -> str:
    """What an engine did beyond its queue's limit ('' if nothing): a figure from a queue
    that did not hold its limit is no figure, so the benchmark fails."""
    figures = job.result.get("figures", {})
    if job.scenario == "concurrency" and figures["max_in_progress"] > 10:
        return f"{figures['max_in_progress']} steps in progress at once, over the limit 10"
    if job.scenario == "rate" and figures["max_admitted_in_window"] > sizes.rate_limit:
        return (
            f"{figures['max_admitted_in_window']} admitted within {sizes.rate_period:g} s, "
            f"over the limit {sizes.rate_limit}"
        )
    return ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument("--engines", default="durable,dbos", help="a subset of durable,dbos")
    parser.add_argument(
        "--short-poll", type=float, default=0.05, help="the short poll interval, seconds"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(pg_server.URL_ENV) or None,
        help=f"an existing PostgreSQL server (default: ${pg_server.URL_ENV}, else start one)",
    )
    parser.add_argument("--dbos-venv", type=Path, default=dbos_venv.default_venv_dir())
    parser.add_argument("--dbos-requirement", default=dbos_venv.DBOS_REQUIREMENT)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or not set(engines) <= {"durable", "dbos"}:
        sys.exit(f"--engines wants a subset of durable,dbos, not {args.engines!r}")
    pythons = {"durable": sys.executable}
    if "dbos" in engines:
        python = dbos_venv.ensure_dbos_venv(args.dbos_venv, args.dbos_requirement, postgres=True)
        pythons["dbos"] = str(python)
    # The default polls (5 s, 1 s) make a queue wait seconds per round: the smoke run skips them.
    polls: list[float | None] = [args.short_poll] if args.quick else [None, args.short_poll]
    jobs = plan(sizes, engines, polls)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        try:
            admin = stack.enter_context(pg_server.admin_url(args.pg_url))
        except pg_server.PgUnavailable as exc:
            sys.exit(f"PostgreSQL: {exc}")
        version = asyncio.run(pg_server.server_version(admin))
        for n, job in enumerate(jobs, 1):
            name = f"durable_qbench_{os.getpid()}_{n:02d}_{job.engine}"
            asyncio.run(pg_server.create_database(admin, name))
            try:
                execute(job, pythons[job.engine], pg_server.with_database(admin, name))
            finally:
                asyncio.run(pg_server.drop_database(admin, name))
            poll = "default poll" if job.poll is None else f"poll {job.poll:g} s"
            state = "FAILED" if job.error else "ok"
            line = f"[{n:>2}/{len(jobs)}] {job.engine:<8} {job.scenario:<12} {poll:<14} {state}"
            print(line, file=sys.stderr, flush=True)
    where = f"PostgreSQL {version}, " + (
        "the server at --pg-url" if args.pg_url else "a throwaway server started by this run"
    )
    text, payload = queues_report.render(jobs, sizes, where, time.perf_counter() - started)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    for job in jobs:
        job.error = job.error or over_limit(job, sizes)
    failed = [j for j in jobs if j.error]
    for job in failed:
        print(f"\n{job.engine} {job.scenario} {job.args} failed:\n{job.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
