"""Benchmark the durable engine against DBOS Transact, in one run, on one machine.

    python benchmarks/run.py                      # SQLite: the issue's sizes, median of 3
    python benchmarks/run.py --quick              # smoke run: small sizes, one repetition
    python benchmarks/run.py --backend postgres   # the same on one PostgreSQL server
    python benchmarks/run.py --backend all        # both, with a summary column for each
    python benchmarks/run.py --workers 1,2,4      # worker scaling (see workers_bench.py)
    python benchmarks/run.py --json results.json

Workloads: (a) sequential workflows of 10 trivial steps, each awaited before the
next starts; (b) concurrent workflows of 10 steps, all started then all awaited;
(c) the database's own ceiling: one row per durable transaction (stdlib sqlite3 on
SQLite, asyncpg on PostgreSQL). Every measurement runs in a fresh process on a fresh
database (a file in one temp directory, or CREATE DATABASE on one server), so peak RSS
is per process and no run inherits another's state.

PostgreSQL: a throwaway server started for the run (Debian's binaries, 127.0.0.1, fsync
and synchronous_commit on; see pg_server.py), or an existing one via --pg-url or
$DURABLE_BENCH_PG_URL (its user needs CREATEDB). A build of durable without a PostgreSQL
store shows its rows as n/a; to measure a branch's store, put its work tree first on
PYTHONPATH (the durable processes keep it; the DBOS ones never see it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import bench_common as bc
import dbos_venv
import pg_server
import report
import summary
from report import Series

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
JOB_TIMEOUT_S = 900.0
BACKENDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Sizes:
    sequential: int
    concurrent: int
    warmup: int
    raw_rows: int
    repeats: int
    # Runs the scaling driver starts at once: enough that the measured interval (seconds)
    # dwarfs the workers' 50 ms poll and the claim batches of 100.
    workers_runs: int


FULL = Sizes(sequential=200, concurrent=100, warmup=5, raw_rows=2000, repeats=3, workers_runs=2000)
QUICK = Sizes(sequential=20, concurrent=20, warmup=2, raw_rows=300, repeats=1, workers_runs=300)

DBOS_APIS = {
    "sequential": {"sync": "DBOS sync workflow", "async": "DBOS async workflow"},
    "concurrent": {"sync": "DBOS start_workflow (threads)", "async": "DBOS start_workflow_async"},
}
# SQLite's journal is DBOS's one obvious tuning knob; PostgreSQL runs as DBOS ships.
DBOS_JOURNALS = {"sqlite": {"default": "default journal", "wal": "WAL"}, "postgres": {"": ""}}


@dataclass(frozen=True)
class Job:
    series: Series
    argv: list[str]  # the process to run, without --db
    env: dict[str, str]


def _env(extra_path: Path | None, *, keep_caller: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    # The DBOS process must see nothing of the project; the durable one must find the
    # SDK even when the project is not installed, and keeps the caller's PYTHONPATH in
    # front so that a branch's work tree can be measured (PYTHONPATH=/work/wt-pg).
    caller = env.pop("PYTHONPATH", "")
    parts = [p for p in (caller if keep_caller else "", str(extra_path or "")) if p]
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def plan(sizes: Sizes, engines: set[str], dbos_python: Path | None, backend: str) -> list[Job]:
    jobs = []
    for kind in ("sequential", "concurrent"):
        count = sizes.sequential if kind == "sequential" else sizes.concurrent
        common = ["--kind", kind, "--workflows", str(count), "--warmup", str(sizes.warmup)]
        if "durable" in engines:
            argv = [sys.executable, str(BENCH_DIR / "workloads_durable.py"), *common]
            series = Series("durable", "durable", kind, backend=backend)
            jobs.append(Job(series, argv, _env(REPO_ROOT, keep_caller=True)))
        if dbos_python is not None:
            script = str(BENCH_DIR / "workloads_dbos.py")
            for api, api_label in DBOS_APIS[kind].items():
                for journal, journal_label in DBOS_JOURNALS[backend].items():
                    label = f"{api_label}, {journal_label}" if journal else api_label
                    argv = [str(dbos_python), script, *common, "--api", api]
                    argv += ["--journal", journal] if journal else []
                    series = Series("dbos", label, kind, journal, backend)
                    jobs.append(Job(series, argv, _env(None)))
    return jobs


def raw_job(sizes: Sizes, backend: str) -> Job:
    script = "raw_sqlite.py" if backend == "sqlite" else "raw_postgres.py"
    label = "raw sqlite3" if backend == "sqlite" else "raw asyncpg"
    argv = [sys.executable, str(BENCH_DIR / script), "--rows", str(sizes.raw_rows)]
    return Job(Series("raw", label, "raw", backend=backend), argv, _env(None))


def plan_workers(sizes: Sizes, counts: list[int], backend: str) -> list[Job]:
    jobs = []
    for n in counts:
        argv = [sys.executable, str(BENCH_DIR / "workers_bench.py"), "--workers", str(n)]
        argv += ["--runs", str(sizes.workers_runs)]
        label = f"{n} worker{'s' if n > 1 else ''}"
        series = Series("durable", label, "workers", str(n), backend)
        jobs.append(Job(series, argv, _env(REPO_ROOT, keep_caller=True)))
    return jobs


@contextlib.contextmanager
def fresh_db(job: Job, n: int, tmp: str, admin: str | None) -> Iterator[str]:
    """A database nobody has used, for one measurement process; removed afterwards."""
    if job.series.backend == "sqlite":
        db = Path(tmp) / f"{n:03d}-{job.series.engine}.db"
        try:
            yield str(db)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        return
    assert admin is not None
    # The pid keeps two runs against one external server apart.
    name = f"durable_bench_{os.getpid()}_{n:03d}_{job.series.engine}"
    asyncio.run(pg_server.create_database(admin, name))
    try:
        yield pg_server.with_database(admin, name)
    finally:
        asyncio.run(pg_server.drop_database(admin, name))


def execute(job: Job, db: str) -> None:
    """Run one measurement process and file its result (or failure) in job.series."""
    start = time.perf_counter()
    # A session of its own, killed whole on a timeout or an interrupt: the scaling
    # driver's worker processes must not outlive it.
    with subprocess.Popen(
        [*job.argv, "--db", db],
        env=job.env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=JOB_TIMEOUT_S)
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            job.series.errors.append(f"timed out after {JOB_TIMEOUT_S:.0f} s")
            return
    wall = time.perf_counter() - start
    lines = [ln for ln in stdout.splitlines() if ln.startswith(bc.RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        job.series.errors.append(f"exit code {proc.returncode}:\n{tail}")
        return
    data = json.loads(lines[-1].removeprefix(bc.RESULT_PREFIX))
    job.series.info.update(data["info"])
    if "unavailable" in data:
        job.series.unavailable = str(data["unavailable"])
        return
    job.series.rates.append(float(data["rate"]))
    job.series.rss_kib.append(int(data["peak_rss_kib"]))
    job.series.wall_s.append(wall)
    job.series.details.append(data["info"])


def _progress(done: int, total: int, job: Job) -> None:
    s = job.series
    if s.errors:
        result = "FAILED"
    elif s.unavailable:
        result = report.NO_STORE
    else:
        result = f"{s.rates[-1]:,.0f}/s in {s.wall_s[-1]:.1f} s"
    name = f"{s.label} [{s.kind}, {s.backend}]"
    print(f"[{done:>2}/{total}] {name:<64} {result}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results here")
    parser.add_argument("--repeats", type=int, help="repetitions per measurement")
    parser.add_argument(
        "--engines",
        default="durable,dbos",
        help="comma-separated subset of durable,dbos (default: both)",
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(pg_server.URL_ENV) or None,
        help=f"an existing PostgreSQL server (default: ${pg_server.URL_ENV}, else start one)",
    )
    parser.add_argument(
        "--workers",
        metavar="N,N,...",
        help="instead of (a)-(c): durable throughput with N worker processes on one database",
    )
    parser.add_argument("--tmpdir", type=Path, help="where SQLite files go (default: $TMPDIR)")
    parser.add_argument("--dbos-venv", type=Path, default=dbos_venv.default_venv_dir())
    parser.add_argument("--dbos-requirement", default=dbos_venv.DBOS_REQUIREMENT)
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 unless every target is PASS"
    )
    return parser.parse_args()


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        sys.exit(f"--workers wants a comma-separated list of counts, not {text!r}")
    if not counts or min(counts) < 1:
        sys.exit(f"--workers wants counts >= 1, not {text!r}")
    return counts


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = replace(sizes, repeats=max(1, args.repeats))
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    engines = {e.strip() for e in args.engines.split(",") if e.strip()}
    if not engines <= {"durable", "dbos"}:
        sys.exit(f"unknown engine in --engines: {sorted(engines - {'durable', 'dbos'})}")
    counts = _worker_counts(args.workers) if args.workers else None
    dbos_python = None
    if "dbos" in engines and counts is None:
        dbos_python = dbos_venv.ensure_dbos_venv(
            args.dbos_venv, args.dbos_requirement, postgres="postgres" in backends
        )

    raws = {b: raw_job(sizes, b) for b in backends} if counts is None else {}
    groups = {
        b: plan_workers(sizes, counts, b) if counts else plan(sizes, engines, dbos_python, b)
        for b in backends
    }
    # Raw runs bracket every repetition, and the engines swap order between
    # repetitions, so a disk that speeds up or slows down mid-run favours no one.
    schedule: list[Job] = []
    for rep in range(sizes.repeats):
        for b in backends:
            schedule += [raws[b]] if b in raws else []
            schedule += groups[b] if rep % 2 == 0 else groups[b][::-1]
    schedule += list(raws.values())

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        admin = None
        if "postgres" in backends:
            try:
                admin = stack.enter_context(pg_server.admin_url(args.pg_url))
            except pg_server.PgUnavailable as exc:
                sys.exit(f"PostgreSQL: {exc}")
        tmp = stack.enter_context(
            tempfile.TemporaryDirectory(prefix="durable-bench-", dir=args.tmpdir)
        )
        for n, job in enumerate(schedule, 1):
            with fresh_db(job, n, tmp, admin) as db:
                execute(job, db)
            _progress(n, len(schedule), job)
        where = {"sqlite": f"a fresh file per process in {tmp}"} if "sqlite" in backends else {}
        if admin is not None:
            version = asyncio.run(pg_server.server_version(admin))
            kind = "the server at" if args.pg_url else "a throwaway server started by this run,"
            where["postgres"] = (
                f"server {version}, a fresh database per process on {kind} {pg_server.mask(admin)}"
            )
    context = summary.Context(args, asdict(sizes), where, time.perf_counter() - started)
    series = [j.series for js in groups.values() for j in js]
    if counts is None:
        raw_series = {b: j.series for b, j in raws.items()}
        text, payload = summary.workloads(context, series, raw_series)
    else:
        text, payload = summary.scaling(context, series)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")

    failures = [s for s in [*(j.series for j in raws.values()), *series] if s.errors]
    for s in failures:
        print(f"\n{s.label} [{s.kind}, {s.backend}] failed:\n{s.errors[0]}", file=sys.stderr)
    if failures:
        return 1
    all_targets = [t for b in raws for t in report.targets(series, raws[b].series, b)]
    if args.strict and any(t.status != "PASS" for t in all_targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
