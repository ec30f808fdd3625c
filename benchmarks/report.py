"""Aggregation, targets and the printed tables; no measuring happens here."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["PASS", "FAIL", "N/A"]

# The targets, stated for a 2-core machine.
SEQ_MIN_STEPS = 1_000.0
SEQ_MIN_FRACTION_OF_RAW = 0.5
CONC_MIN_STEPS = 10_000.0
MIN_RATIO_VS_DBOS = 10.0

BACKEND_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
NO_STORE = "n/a (no PostgreSQL store in this build)"


@dataclass
class Series:
    """Every run of one engine configuration on one workload and one backend."""

    engine: str  # "durable", "dbos" or "raw"
    label: str
    kind: str  # "sequential", "concurrent", "raw" or "workers"
    setup: str = ""  # for DBOS on SQLite: "default" (as shipped) or "wal" (tuned)
    backend: str = "sqlite"  # "sqlite" or "postgres"
    rates: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    info: dict[str, object] = field(default_factory=dict)
    details: list[dict[str, object]] = field(default_factory=list)  # each run's info
    # Why this build could not run it at all (no PostgreSQL store): shown as n/a, not failed.
    unavailable: str | None = None

    @property
    def median(self) -> float | None:
        # The median, not the best run: a shared VM has noisy neighbours, and one
        # lucky run should not decide a target.
        return statistics.median(self.rates) if self.rates else None

    @property
    def peak_rss_kib(self) -> int | None:
        return max(self.rss_kib) if self.rss_kib else None


@dataclass(frozen=True)
class Target:
    workload: str
    goal: str
    measured: str
    status: Status


def best(
    series: list[Series], engine: str, kind: str, backend: str, setup: str | None = None
) -> Series | None:
    candidates = [
        s
        for s in series
        if s.engine == engine
        and s.kind == kind
        and s.backend == backend
        and s.rates
        and setup in (None, s.setup)
    ]
    return max(candidates, key=lambda s: s.median or 0.0, default=None)


def _unavailable(series: list[Series], backend: str) -> bool:
    return any(s.unavailable for s in series if s.engine == "durable" and s.backend == backend)


def _status(ok: bool) -> Status:
    return "PASS" if ok else "FAIL"


def _ratio_target(workload: str, goal: str, ours: float | None, dbos: Series | None) -> Target:
    if ours is None or dbos is None or dbos.median is None:
        return Target(workload, goal, "no data", "N/A")
    ratio = ours / dbos.median
    measured = f"{ratio:.1f}x {dbos.label} ({dbos.median:,.0f})"
    return Target(workload, goal, measured, _status(ratio >= MIN_RATIO_VS_DBOS))


def _ratio_targets(
    workload: str, ours: float | None, series: list[Series], kind: str, backend: str
) -> list[Target]:
    times = f">= {MIN_RATIO_VS_DBOS:.0f}x"
    if backend != "sqlite":
        # On PostgreSQL DBOS has nothing to tune the way SQLite's journal is: the best
        # of its two APIs is the one comparison.
        dbos = best(series, "dbos", kind, backend)
        return [_ratio_target(workload, f"{times} best DBOS", ours, dbos)]
    # DBOS leaves its SQLite file in rollback-journal mode; switching it to WAL is a
    # one-line tuning that nearly doubles it. Both comparisons are shown because they
    # differ by more than the disk's headroom: 10x tuned DBOS can exceed what one commit
    # per step allows.
    return [
        _ratio_target(workload, f"{times} {name}", ours, best(series, "dbos", kind, backend, setup))
        for name, setup in (("DBOS as shipped", "default"), ("DBOS tuned to WAL", "wal"))
    ]


def _rate_target(workload: str, floor: float, rate: float | None) -> Target:
    goal = f">= {floor:,.0f} steps/s"
    if rate is None:
        return Target(workload, goal, "no data", "N/A")
    return Target(workload, goal, f"{rate:,.0f} steps/s", _status(rate >= floor))


def targets(series: list[Series], raw: Series, backend: str = "sqlite") -> list[Target]:
    seq = best(series, "durable", "sequential", backend)
    conc = best(series, "durable", "concurrent", backend)
    seq_rate = seq.median if seq else None
    conc_rate = conc.median if conc else None
    out = [_rate_target("(a)", SEQ_MIN_STEPS, seq_rate)]
    if backend == "sqlite":
        # Stated for SQLite only: the PostgreSQL targets are the absolute floors
        # and the DBOS ratios (the raw ceiling is still printed there, for reference).
        goal = f">= {SEQ_MIN_FRACTION_OF_RAW:.0%} of raw commits/s (c)"
        if seq_rate is None or raw.median is None:
            out.append(Target("(a)", goal, "no data", "N/A"))
        else:
            fraction = seq_rate / raw.median
            ok = fraction >= SEQ_MIN_FRACTION_OF_RAW
            out.append(Target("(a)", goal, f"{fraction:.0%} of {raw.median:,.0f}", _status(ok)))
    out.extend(_ratio_targets("(a)", seq_rate, series, "sequential", backend))
    out.append(_rate_target("(b)", CONC_MIN_STEPS, conc_rate))
    out.extend(_ratio_targets("(b)", conc_rate, series, "concurrent", backend))
    if _unavailable(series, backend):
        out = [Target(t.workload, t.goal, NO_STORE, "N/A") for t in out]
    return out


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def _runs(s: Series) -> str:
    shown = " ".join(f"{r:,.0f}" for r in s.rates)
    return shown + (f" ({len(s.errors)} failed)" if s.errors else "")


def _rate(s: Series | None, unit: str = "") -> str:
    if s is None:
        return "-"
    if s.unavailable:
        return NO_STORE
    return "failed" if s.median is None else f"{s.median:,.0f}{unit}"


def _workload_rows(series: list[Series], kind: str, backend: str) -> list[str]:
    ours = best(series, "durable", kind, backend)
    ours_rate = ours.median if ours else None
    rows = []
    for s in (s for s in series if s.kind == kind and s.backend == backend):
        if s.unavailable:
            rows.append(f"    {s.label:<46} {NO_STORE}")
            continue
        ratio = ""
        if s.engine != "durable" and ours_rate is not None and s.median:
            ratio = f"{ours_rate / s.median:.1f}x"
        rows.append(
            f"    {s.label:<46} {_rate(s):>10} {ratio:>13} {_mib(s.peak_rss_kib):>11}   {_runs(s)}"
        )
    return rows


def render_backend(
    backend: str, titles: dict[str, str], series: list[Series], raw: Series
) -> list[str]:
    lines = [f"=== {BACKEND_NAMES[backend]} ===", f"(c) {titles['raw']}"]
    lines.append(f"    {_rate(raw, ' commits/s')}   runs: {_runs(raw)}")
    for kind in ("sequential", "concurrent"):
        lines.append("")
        head = f"{titles[kind]:<50} {'steps/s':>10} {'durable/this':>13} {'peak RSS':>11}   runs"
        lines.append(head)
        lines.extend(_workload_rows(series, kind, backend))
    lines.append("")
    lines.append(f"targets ({BACKEND_NAMES[backend]})")
    for t in targets(series, raw, backend):
        lines.append(f"    {t.workload} {t.goal:<34} {t.measured:<60} {t.status}")
    return lines


def _best_dbos(series: list[Series], kind: str, backend: str) -> str:
    dbos = best(series, "dbos", kind, backend)
    if dbos is None or dbos.median is None:
        return "-"
    api = "async" if "async" in dbos.label else "sync"
    return f"{dbos.median:,.0f} ({api}{', WAL' if dbos.setup == 'wal' else ''})"


def _ratio(series: list[Series], kind: str, backend: str) -> str:
    ours = best(series, "durable", kind, backend)
    dbos = best(series, "dbos", kind, backend)
    if ours is None or dbos is None or not ours.median or not dbos.median:
        return "-"
    return f"{ours.median / dbos.median:.1f}x"


def render_summary(series: list[Series], raws: dict[str, Series]) -> list[str]:
    """One column per backend: the issue's 'PostgreSQL column' beside SQLite's."""
    backends = list(raws)
    cell = 40
    lines = [
        "summary: median steps/s (raw: commits/s); ratio = durable / best DBOS",
        (" " * 30 + "".join(f"{BACKEND_NAMES[b]:<{cell}}" for b in backends)).rstrip(),
    ]

    def row(label: str, cells: list[str]) -> None:
        lines.append((f"    {label:<26}" + "".join(f"{c:<{cell}}" for c in cells)).rstrip())

    for kind, name in (("sequential", "(a) sequential"), ("concurrent", "(b) concurrent")):
        durable = [
            next((s for s in series if s.engine == "durable" and s.kind == kind and s.backend == b),
                 None)
            for b in backends
        ]  # fmt: skip
        row(f"{name}: durable", [_rate(s) for s in durable])
        row("    best DBOS", [_best_dbos(series, kind, b) for b in backends])
        row("    ratio", [_ratio(series, kind, b) for b in backends])
    row("(c) raw commits", [_rate(raws[b]) for b in backends])
    return lines
