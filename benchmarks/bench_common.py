"""Shared plumbing for the benchmark's measurement processes.

Stdlib only: this module is imported both by the project's interpreter and by the
private DBOS virtual environment, which has nothing of the project installed.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

STEPS_PER_WORKFLOW = 10
# Every workflow sums range(10) through its steps; checking the sum makes an engine
# that skipped or lost steps fail loudly instead of posting a fast number.
EXPECTED_RESULT = sum(range(STEPS_PER_WORKFLOW))
# Engines may log to stdout; the parent only trusts the line carrying this prefix.
RESULT_PREFIX = "BENCH_RESULT "

Kind = Literal["sequential", "concurrent"]


@dataclass(frozen=True)
class WorkloadArgs:
    kind: Kind
    workflows: int
    warmup: int
    db: str  # a SQLite file path, or a postgresql:// URL


def is_postgres(db: str) -> bool:
    # A URL, not a Path: pathlib would fold the "//" of postgresql:// into one slash.
    return db.startswith(("postgresql://", "postgres://"))


def workload_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--kind", choices=["sequential", "concurrent"], required=True)
    parser.add_argument("--workflows", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--db", required=True, help="SQLite file path or postgresql:// URL (a fresh database)"
    )
    return parser


def workload_args(ns: argparse.Namespace) -> WorkloadArgs:
    kind: Kind = "sequential" if ns.kind == "sequential" else "concurrent"
    return WorkloadArgs(kind=kind, workflows=ns.workflows, warmup=ns.warmup, db=ns.db)


def check_results(results: Sequence[int], expected_count: int) -> None:
    if len(results) != expected_count:
        raise RuntimeError(f"expected {expected_count} results, got {len(results)}")
    bad = [r for r in results if r != EXPECTED_RESULT]
    if bad:
        raise RuntimeError(f"{len(bad)} workflows returned a wrong result, e.g. {bad[0]!r}")


RunOne = Callable[[int], Awaitable[int]]
RunMany = Callable[[int], Awaitable[list[int]]]


async def timed_async(args: WorkloadArgs, run_one: RunOne, run_many: RunMany) -> float:
    """Warm up, then time the workload; returns elapsed seconds.

    The warm-up has the same shape as the timed part so that lazily created
    resources (connection pools, thread pools, caches) are paid for outside the
    timing, identically for every engine.
    """
    if args.kind == "sequential":
        check_results([await run_one(i) for i in range(args.warmup)], args.warmup)
    elif args.warmup:
        check_results(await run_many(args.warmup), args.warmup)
    start = time.perf_counter()
    if args.kind == "sequential":
        results = [await run_one(i) for i in range(args.workflows)]
    else:
        results = await run_many(args.workflows)
    elapsed = time.perf_counter() - start
    check_results(results, args.workflows)
    return elapsed


def timed_sync(
    args: WorkloadArgs,
    run_one: Callable[[int], int],
    run_many: Callable[[int], list[int]],
) -> float:
    """Blocking twin of timed_async, for engines driven from plain threads."""
    if args.kind == "sequential":
        check_results([run_one(i) for i in range(args.warmup)], args.warmup)
    elif args.warmup:
        check_results(run_many(args.warmup), args.warmup)
    start = time.perf_counter()
    if args.kind == "sequential":
        results = [run_one(i) for i in range(args.workflows)]
    else:
        results = run_many(args.workflows)
    elapsed = time.perf_counter() - start
    check_results(results, args.workflows)
    return elapsed


def peak_rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux but bytes on macOS.
    return peak // 1024 if sys.platform == "darwin" else peak


def journal_mode(db: Path) -> str:
    """The journal mode recorded in a database file (WAL is persistent, so readable)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("PRAGMA journal_mode").fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else "unknown"


def project_version() -> str:
    """durable's version, when installed; measured from a bare source tree it is not."""
    try:
        return version("durable")
    except PackageNotFoundError:
        return "source tree"


def emit(payload: Mapping[str, object]) -> None:
    print(RESULT_PREFIX + json.dumps(payload), flush=True)


def emit_workload(args: WorkloadArgs, elapsed: float, info: Mapping[str, object]) -> None:
    steps = args.workflows * STEPS_PER_WORKFLOW
    emit(
        {
            "kind": args.kind,
            "workflows": args.workflows,
            "steps": steps,
            "seconds": elapsed,
            "rate": steps / elapsed,
            "peak_rss_kib": peak_rss_kib(),
            "info": dict(info),
        }
    )


# What a build without a PostgreSQL store says when given a postgresql:// URL
# (storage/_url.py). Any other refusal of a URL is the harness's own bug: it must fail
# loudly rather than pass for "not in this build".
NO_STORE_MESSAGE = "PostgreSQL support is not available"


def emit_unavailable(reason: str, info: Mapping[str, object]) -> None:
    """This build can't run the workload at all (e.g. no PostgreSQL store): not a failure."""
    emit({"unavailable": reason, "info": dict(info)})
