"""What both sides of the queue benchmark share (benchmarks/queues_bench.py): the scenarios'
arguments, and the figures computed from the times each side records.

Stdlib only: imported by the project's interpreter and by DBOS's private virtual environment.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence

SCENARIOS = ("overhead", "start_cost", "concurrency", "rate", "fairness")
QUEUE = "bench"
BIG, SMALL = "tenant-big", "tenant-small"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scenario", choices=SCENARIOS, required=True)
    p.add_argument("--db", required=True, help="postgresql:// URL of a fresh database")
    p.add_argument("--runs", type=int, required=True, help="timed runs (fairness: big tenant)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--small", type=int, default=5, help="fairness: the small tenant's runs")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--step-ms", type=float, default=50.0, help="the sleeping step's length")
    p.add_argument("--limit", type=int, default=50, help="rate: admissions per period")
    p.add_argument("--period", type=float, default=2.0, help="rate: the period, seconds")
    p.add_argument(
        "--poll", type=float, help="the engine's queue poll interval (default: the engine's own)"
    )
    return p


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile, nearest rank (p99 of 5 values is the largest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def max_in_window(times: Sequence[float], period: float) -> int:
    """The most of `times` inside any half-open window [t, t + period)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= period:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def admission_rate(times: Sequence[float], period: float) -> float:
    """Admissions per second over the run: n / (last - first + period). A limiter that admits
    exactly `limit` at the start of every period scores limit / period; one that admits late
    scores less."""
    ordered = sorted(times)
    return len(ordered) / (ordered[-1] - ordered[0] + period)


def max_overlap(spans: Sequence[tuple[float, float]]) -> int:
    """The most spans (start, end) in progress at once."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, delta in edges:
        now += delta
        best = max(best, now)
    return best


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "median_ms": statistics.median(ms),
        "mean_ms": statistics.fmean(ms),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
    }
