"""Benchmark the durable engine against DBOS Transact, in one run, on one disk.

    python benchmarks/run.py            # full run: the issue's sizes, median of 3
    python benchmarks/run.py --quick    # smoke run: small sizes, one repetition
    python benchmarks/run.py --json results.json

Workloads: (a) sequential workflows of 10 trivial steps, each awaited before the
next starts; (b) concurrent workflows of 10 steps, all started then all awaited;
(c) stdlib sqlite3 committing one row per transaction, the disk's ceiling.
Every measurement runs in a fresh process on a fresh database file in one temp
directory, so peak RSS is per process and no run inherits another's state.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import bench_common as bc
import dbos_venv
import report
from report import Series

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
JOB_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Sizes:
    sequential: int
    concurrent: int
    warmup: int
    raw_rows: int
    repeats: int


FULL = Sizes(sequential=200, concurrent=100, warmup=5, raw_rows=2000, repeats=3)
QUICK = Sizes(sequential=20, concurrent=20, warmup=2, raw_rows=300, repeats=1)

DBOS_APIS = {
    "sequential": {"sync": "DBOS sync workflow", "async": "DBOS async workflow"},
    "concurrent": {"sync": "DBOS start_workflow (threads)", "async": "DBOS start_workflow_async"},
}
DBOS_JOURNALS = {"default": "default journal", "wal": "WAL"}


@dataclass(frozen=True)
class Job:
    series: Series
    argv: list[str]  # the process to run, without --db
    env: dict[str, str]


def _env(extra_path: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    # The DBOS process must see nothing of the project; the durable one must find
    # the SDK even when the project is not installed.
    env.pop("PYTHONPATH", None)
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    return env


def plan(sizes: Sizes, engines: set[str], dbos_python: Path | None) -> list[Job]:
    jobs = []
    for kind in ("sequential", "concurrent"):
        count = sizes.sequential if kind == "sequential" else sizes.concurrent
        common = ["--kind", kind, "--workflows", str(count), "--warmup", str(sizes.warmup)]
        if "durable" in engines:
            argv = [sys.executable, str(BENCH_DIR / "workloads_durable.py"), *common]
            jobs.append(Job(Series("durable", "durable", kind), argv, _env(REPO_ROOT)))
        if dbos_python is not None:
            script = str(BENCH_DIR / "workloads_dbos.py")
            for api, api_label in DBOS_APIS[kind].items():
                for journal, journal_label in DBOS_JOURNALS.items():
                    label = f"{api_label}, {journal_label}"
                    argv = [str(dbos_python), script, *common, "--api", api, "--journal", journal]
                    jobs.append(Job(Series("dbos", label, kind, journal), argv, _env(None)))
    return jobs


def execute(job: Job, db: Path) -> None:
    """Run one measurement process and file its result (or failure) in job.series."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [*job.argv, "--db", str(db)],
            env=job.env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        job.series.errors.append(f"timed out after {JOB_TIMEOUT_S:.0f} s")
        return
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    wall = time.perf_counter() - start
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(bc.RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        job.series.errors.append(f"exit code {proc.returncode}:\n{tail}")
        return
    data = json.loads(lines[-1].removeprefix(bc.RESULT_PREFIX))
    job.series.rates.append(float(data["rate"]))
    job.series.rss_kib.append(int(data["peak_rss_kib"]))
    job.series.wall_s.append(wall)
    job.series.info.update(data["info"])


def _progress(done: int, total: int, job: Job) -> None:
    s = job.series
    result = f"{s.rates[-1]:,.0f}/s in {s.wall_s[-1]:.1f} s" if not s.errors else "FAILED"
    name = f"{s.label} [{s.kind}]"
    print(f"[{done:>2}/{total}] {name:<60} {result}", file=sys.stderr, flush=True)


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
    parser.add_argument("--tmpdir", type=Path, help="where the databases go (default: $TMPDIR)")
    parser.add_argument("--dbos-venv", type=Path, default=dbos_venv.default_venv_dir())
    parser.add_argument("--dbos-requirement", default=dbos_venv.DBOS_REQUIREMENT)
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 unless every target is PASS"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        sizes = replace(sizes, repeats=max(1, args.repeats))
    engines = {e.strip() for e in args.engines.split(",") if e.strip()}
    if not engines <= {"durable", "dbos"}:
        sys.exit(f"unknown engine in --engines: {sorted(engines - {'durable', 'dbos'})}")
    dbos_python = None
    if "dbos" in engines:
        dbos_python = dbos_venv.ensure_dbos_venv(args.dbos_venv, args.dbos_requirement)

    raw = Series("raw", "raw sqlite3", "raw")
    raw_job = Job(
        raw,
        [sys.executable, str(BENCH_DIR / "raw_sqlite.py"), "--rows", str(sizes.raw_rows)],
        _env(None),
    )
    engine_jobs = plan(sizes, engines, dbos_python)
    # Raw runs bracket every repetition, and the engines swap order between
    # repetitions, so a disk that speeds up or slows down mid-run favours no one.
    schedule = []
    for rep in range(sizes.repeats):
        schedule.append(raw_job)
        schedule.extend(engine_jobs if rep % 2 == 0 else engine_jobs[::-1])
    schedule.append(raw_job)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="durable-bench-", dir=args.tmpdir) as tmp:
        for n, job in enumerate(schedule, 1):
            db = Path(tmp) / f"{n:03d}-{job.series.engine}.db"
            execute(job, db)
            _progress(n, len(schedule), job)
    total_s = time.perf_counter() - started

    series = [j.series for j in engine_jobs]
    text, payload = summarize(args, sizes, tmp, series, raw, total_s)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")

    failures = [s for s in [raw, *series] if s.errors]
    for s in failures:
        print(f"\n{s.label} [{s.kind}] failed:\n{s.errors[0]}", file=sys.stderr)
    if failures:
        return 1
    if args.strict and any(t.status != "PASS" for t in report.targets(series, raw)):
        return 3
    return 0


def summarize(
    args: argparse.Namespace,
    sizes: Sizes,
    tmp: str,
    series: list[Series],
    raw: Series,
    total_s: float,
) -> tuple[str, dict[str, object]]:
    cpus = os.cpu_count() or 0
    dbos_wall = sum(sum(s.wall_s) for s in series if s.engine == "dbos")
    dbos_info = next((s.info for s in series if s.engine == "dbos" and s.info), {})
    header = [
        f"durable vs DBOS Transact: {cpus} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"databases: a fresh file per process in {tmp}; median of {sizes.repeats} run(s), "
        f"{sizes.warmup} warm-up workflow(s) per process",
        f"the whole run took {total_s:.0f} s wall, of which DBOS processes {dbos_wall:.0f} s",
    ]
    if dbos_info:
        header.append(f"DBOS {dbos_info.get('dbos_version')} from the venv {args.dbos_venv}")
    if args.quick:
        header.append("QUICK RUN: reduced sizes, so PASS/FAIL below is indicative only")
    if cpus != 2:
        header.append(f"note: the targets are stated for 2 cores; this machine has {cpus}")
    titles = {
        "raw": f"raw sqlite3 commits, WAL + synchronous=FULL, {sizes.raw_rows} rows, "
        "one BEGIN IMMEDIATE/INSERT/COMMIT each",
        "sequential": f"(a) {sizes.sequential} sequential workflows x 10 steps",
        "concurrent": f"(b) {sizes.concurrent} concurrent workflows x 10 steps",
    }
    text = report.render(header, titles, series, raw)
    payload: dict[str, object] = {
        "header": header,
        "sizes": asdict(sizes),
        "quick": args.quick,
        "raw": asdict(raw) | {"median": raw.median},
        "series": [asdict(s) | {"median": s.median} for s in series],
        "targets": [asdict(t) for t in report.targets(series, raw)],
    }
    return text, payload


if __name__ == "__main__":
    sys.exit(main())
