"""What run.py prints and writes as JSON once everything is measured."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
from dataclasses import asdict, dataclass

import report
from report import BACKEND_NAMES, Series


@dataclass(frozen=True)
class Context:
    args: argparse.Namespace
    sizes: dict[str, int]
    where: dict[str, str]  # backend -> where its databases were
    total_s: float


def _header(ctx: Context, series: list[Series]) -> list[str]:
    cpus = os.cpu_count() or 0
    lines = [
        f"durable vs DBOS Transact: {cpus} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]
    lines += [f"{BACKEND_NAMES[b]}: {text}" for b, text in ctx.where.items()]
    durable = next((s.info for s in series if s.engine == "durable" and s.info), {})
    if durable:
        lines.append(f"durable {durable.get('durable_version')} from {durable.get('source')}")
    dbos = [s for s in series if s.engine == "dbos"]
    dbos_info = next((s.info for s in dbos if s.info), {})
    if dbos_info:
        lines.append(f"DBOS {dbos_info.get('dbos_version')} from the venv {ctx.args.dbos_venv}")
    dbos_wall = sum(sum(s.wall_s) for s in dbos)
    lines.append(
        f"the whole run took {ctx.total_s:.0f} s wall, of which DBOS processes {dbos_wall:.0f} s"
    )
    if ctx.args.quick:
        lines.append("QUICK RUN: reduced sizes, so PASS/FAIL below is indicative only")
    if cpus != 2:
        lines.append(f"note: the targets are stated for 2 cores; this machine has {cpus}")
    return lines


def workloads(
    ctx: Context, series: list[Series], raws: dict[str, Series]
) -> tuple[str, dict[str, object]]:
    sizes = ctx.sizes
    header = _header(ctx, series)
    header.append(
        f"median of {sizes['repeats']} run(s), {sizes['warmup']} warm-up workflow(s) per process"
    )
    raw_titles = {
        "sqlite": f"raw sqlite3 commits, WAL + synchronous=FULL, {sizes['raw_rows']} rows, "
        "one BEGIN IMMEDIATE/INSERT/COMMIT each",
        "postgres": f"raw asyncpg commits, {sizes['raw_rows']} rows, one autocommit INSERT "
        "each (a transaction and a WAL flush per row)",
    }
    lines = [*header]
    for backend, raw in raws.items():
        titles = {
            "raw": raw_titles[backend],
            "sequential": f"(a) {sizes['sequential']} sequential workflows x 10 steps",
            "concurrent": f"(b) {sizes['concurrent']} concurrent workflows x 10 steps",
        }
        lines += ["", *report.render_backend(backend, titles, series, raw)]
    if len(raws) > 1:
        lines += ["", *report.render_summary(series, raws)]
    payload: dict[str, object] = {
        "header": header,
        "sizes": sizes,
        "quick": ctx.args.quick,
        "raw": {b: asdict(r) | {"median": r.median} for b, r in raws.items()},
        "series": [asdict(s) | {"median": s.median} for s in series],
        "targets": {b: [asdict(t) for t in report.targets(series, r, b)] for b, r in raws.items()},
    }
    return "\n".join(lines), payload


def _numbers(value: object) -> list[float]:
    """The numbers in a JSON value that should be a list of them (details are untyped)."""
    items = value if isinstance(value, list) else []
    return [float(v) for v in items if isinstance(v, int | float)]


def _median_detail(s: Series) -> dict[str, object]:
    """The info of the run whose rate is the median (the upper one of an even count)."""
    order = sorted(range(len(s.rates)), key=lambda i: s.rates[i])
    return s.details[order[len(order) // 2]] if order else {}


@dataclass(frozen=True)
class _Cores:
    """Where the CPU went during one measured interval, in cores (CPU-seconds per second)."""

    workers: float
    driver: float
    rest: float  # the database server, the kernel, and anything else on the machine

    @classmethod
    def of(cls, detail: dict[str, object], cpus: int) -> _Cores:
        interval = sum(_numbers([detail.get("interval_s")])) or 1.0
        workers = sum(_numbers(detail.get("worker_cpu_s"))) / interval
        driver = sum(_numbers([detail.get("driver_cpu_s")])) / interval
        busy = sum(_numbers([detail.get("machine_cpu_busy")])) * cpus
        return cls(workers, driver, max(0.0, busy - workers - driver))

    @property
    def total(self) -> float:
        return self.workers + self.driver + self.rest


def _scaling_rows(series: list[Series], backend: str, cpus: int) -> list[str]:
    rows = [
        f"    {'':<10} {'steps/s':>9} {'vs 1st':>7}   cores busy: {'workers':>7} {'driver':>6} "
        f"{'rest':>5} {'all':>5}   runs executed per worker     all runs' steps/s"
    ]
    base = next((s.median for s in series if s.backend == backend and s.median), None)
    for s in (s for s in series if s.backend == backend):
        if s.unavailable or s.median is None:
            rows.append(f"    {s.label:<10} {report.NO_STORE if s.unavailable else 'failed'}")
            continue
        d = _median_detail(s)
        shares = " / ".join(f"{n:.0f}" for n in _numbers(d.get("runs_per_worker")))
        c = _Cores.of(d, cpus)
        vs = f"{s.median / base:.2f}x" if base else "-"
        runs = " ".join(f"{r:,.0f}" for r in s.rates)
        rows.append(
            f"    {s.label:<10} {s.median:>9,.0f} {vs:>7}   {'':>11} {c.workers:>7.2f} "
            f"{c.driver:>6.2f} {c.rest:>5.2f} {c.total:>5.2f}   {shares:<28} {runs}"
        )
    return rows


# Why the table looks as it does, in terms of its own columns, so that each claim can be
# checked against this run's numbers rather than taken on trust. Said once per backend shown.
_WHY = {
    "sqlite": [
        "SQLite: one database file has one write lock. The worker processes take turns",
        "writing, so together they use about the CPU one worker uses ('workers' stays put",
        "as N grows) and steps/s stays where one worker puts it: on SQLite, more worker",
        "processes on one file add no throughput, on any number of cores.",
    ],
    "postgres": [
        "PostgreSQL: a worker waits for a round trip and a WAL flush at every commit. With",
        "more workers those waits overlap and the server flushes several workers' commits",
        "in one WAL write, so steps/s can rise with N while CPU is idle. But the workers,",
        "the driver and the server's processes share the same cores ('all'): once 'all' is",
        "near the core count, another worker is one more process competing for them, not",
        "more capacity.",
    ],
}


def _explanation(cpus: int, backends: list[str]) -> list[str]:
    lines = [
        "how to read it: 'cores busy' is CPU time per second of the measured interval (median",
        f"run) on a machine with {cpus} cores; 'rest' is busy time that is neither the workers",
        "nor the driver: the PostgreSQL server, the kernel (fsync) and anything else running",
        "here, other users' work included. A worker is one Python event loop: it can keep",
        f"about one core busy, so {cpus} cores leave no room for a 3rd or 4th busy worker,",
        "and more workers pay off only with a core each (a bigger machine, or workers on",
        "other machines sharing one PostgreSQL server).",
    ]
    for backend in backends:
        lines += _WHY[backend]
    lines += [
        "runs per worker: a worker leases up to 10 runs per look and looks again at once",
        "while it finds 10. On PostgreSQL a new run's NOTIFY wakes every idle worker, so",
        "they share a burst; on SQLite the others only look at their next poll, and the",
        "worker that looked first may take most of a burst.",
    ]
    return lines


def scaling(ctx: Context, series: list[Series]) -> tuple[str, dict[str, object]]:
    sizes = ctx.sizes
    header = _header(ctx, series)
    header.append(
        f"worker scaling: one driver process (App(worker=False)) starts {sizes['workers_runs']} "
        "runs x 10 steps at once; N `durable worker` processes (poll 50 ms) execute them; "
        f"timed until none is unfinished; median of {sizes['repeats']} run(s)"
    )
    lines = [*header]
    backends = list(dict.fromkeys(s.backend for s in series))
    for backend in backends:
        lines += ["", f"=== worker scaling on {BACKEND_NAMES[backend]} ==="]
        lines += _scaling_rows(series, backend, os.cpu_count() or 1)
    lines += ["", *_explanation(os.cpu_count() or 0, backends)]
    payload: dict[str, object] = {
        "header": header,
        "sizes": sizes,
        "quick": ctx.args.quick,
        "workers": [
            asdict(s) | {"median": s.median, "median_run": _median_detail(s)} for s in series
        ],
    }
    return "\n".join(lines), payload
