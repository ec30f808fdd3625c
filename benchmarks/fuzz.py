"""The workflow fuzzer, for as long as you like (docs/fuzzing.md).

    python benchmarks/fuzz.py --minutes 10 [--seed S] [--db sqlite|postgres]
    python benchmarks/fuzz.py --example '<json printed by a failure>'   # run one again

Draws programs and schedules with Hypothesis (tests/fuzz: the grammar, the harness and its
checks), in batches of BATCH examples, batch i seeded with (S, i), until the time is up; a
failing batch is shrunk by Hypothesis and its smallest failing program is printed. At the end it
prints what it explored: programs, runs, steps executed, signals, cancels, kills, children,
gathers, tries..., the outcomes, the known engine bugs it tolerated, and every failure.

PostgreSQL: $DURABLE_BENCH_PG_URL, else a throwaway server (benchmarks/pg_server.py); each
example gets a schema of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "fuzz"), str(ROOT)]

from fuzz_harness import (  # noqa: E402
    Example,
    FuzzFailure,
    example_from_json,
    example_json,
    examples,
    run_example,
)
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis.errors import FlakyFailure  # noqa: E402

BATCH = 10
SHRINK_MINUTES = 3.0  # then the smallest failing example found so far is reported


class State:
    def __init__(self, deadline: float, workdir: Path, url_for: UrlFactory) -> None:
        self.deadline = deadline
        self.workdir = workdir
        self.url_for = url_for
        self.stats: Counter[str] = Counter()
        self.failing = False  # a failure was seen in this batch: Hypothesis is shrinking it
        self.first_report = ""
        self.last_report = ""
        self.last_failing = ""
        self.shrink_deadline = 0.0
        self.n = 0


class UrlFactory:
    def __init__(self, pg_url: str | None) -> None:
        self.pg_url = pg_url

    def __call__(self) -> str | None:
        if self.pg_url is None:
            return None  # run_example puts a SQLite file in the example's directory
        sep = "&" if "?" in self.pg_url else "?"
        return f"{self.pg_url}{sep}schema=fz_{uuid.uuid4().hex[:16]}"


def one(state: State, ex: Example) -> None:
    if not state.failing and time.monotonic() > state.deadline:
        return  # out of time: the rest of the batch passes without running
    if state.failing and time.monotonic() > state.shrink_deadline:
        # Shrinking took long enough: the smallest failure so far is the answer. Hypothesis
        # replays it last, and gets its failure again; every other candidate passes.
        if example_json(ex) == state.last_failing:
            raise FuzzFailure(state.last_report)
        return
    state.n += 1
    workdir = state.workdir / f"ex{state.n}"
    workdir.mkdir()
    try:
        stats = asyncio.run(run_example(ex, workdir, state.url_for()))
    except FuzzFailure as exc:
        if not state.failing:
            print(f"a failure, Hypothesis now shrinks it:\n{exc}\n", flush=True)
        if not state.failing:
            state.shrink_deadline = time.monotonic() + SHRINK_MINUTES * 60
        state.failing = True
        state.last_failing = example_json(ex)
        state.stats["failing executions"] += 1
        state.first_report = state.first_report or str(exc)
        state.last_report = str(exc)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    state.stats.update(stats)
    done = state.stats["programs"]
    if done % 10 == 0:
        print(f"  ... {done} programs, {state.stats['kills']} kills", flush=True)


def batch(state: State, batch_seed: int) -> str | None:
    """Run one batch; the shrunk failure's report, if it failed."""

    @seed(batch_seed)
    @settings(
        max_examples=BATCH,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(ex=examples())
    def run(ex: Example) -> None:
        one(state, ex)

    state.failing = False
    state.first_report = state.last_report = ""
    try:
        run()
    except FuzzFailure as exc:
        return f"(shrunk by Hypothesis; batch seed {batch_seed})\n{exc}"
    except FlakyFailure:
        return (
            f"(flaky: the failure did not happen again when replayed; batch seed {batch_seed})"
            f"\n{state.first_report}"
        )
    return None


@contextlib.contextmanager
def database(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
        return
    import os

    import pg_server  # benchmarks/

    with pg_server.admin_url(os.environ.get(pg_server.URL_ENV)) as url:
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--example", help="run this one example (JSON) and report")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so that the harness kills its worker processes on the way.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    base_seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    import httpx  # noqa: F401  (see tests/fuzz/test_fuzz.py: imported before any draw)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    failures: list[str] = []
    started = time.monotonic()
    with database(args.db) as pg_url, tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        state = State(started + args.minutes * 60, Path(tmp), UrlFactory(pg_url))
        if args.example:
            try:
                one(state, example_from_json(args.example))
            except FuzzFailure as exc:
                print(exc)
                return 1
            print("the example passed:", dict(state.stats))
            return 0
        print(f"fuzzing for {args.minutes:g} min, seed {base_seed}, db {args.db}", flush=True)
        i = 0
        while time.monotonic() < state.deadline:
            found = batch(state, base_seed * 1_000 + i)
            i += 1
            if found is not None:
                failures.append(found)
                print(found, flush=True)
    print(summary(state.stats, failures, time.monotonic() - started, base_seed, args.db))
    return 1 if failures else 0


def summary(stats: Counter[str], failures: list[str], took: float, s: int, db: str) -> str:
    def n(key: str) -> int:
        return stats.get(key, 0)

    lines = [
        "",
        f"workflow fuzzer: {took / 60:.1f} min, seed {s}, db {db}",
        f"  programs          {n('programs')} ({n('runs')} runs, {n('runs') - n('programs')} "
        "of them child runs)",
        f"  steps             {n('nodes: step')} in programs, {n('step executions')} executions "
        f"({n('nodes: step_retried')} planned to fail first)",
        f"  signals           {n('nodes: signal')} waits ({n('nodes: signal_sent')} sent, "
        f"{n('nodes: signal_sent_timeout')} sent with a timeout, {n('nodes: signal_timeout')} "
        f"timing out); {n('signals sent')} signals sent",
        f"  timers            {n('nodes: sleep')}",
        f"  cancels           {n('nodes: hold')} holds, {n('cancels sent')} cancels sent at a "
        f"hold, {n('random cancels sent')} at random moments",
        f"  kills             {n('kills')} SIGKILLs landed ({n('workers')} worker processes)",
        f"  children          {n('nodes: child')} ({n('nodes: child_abandon')} abandoned)",
        f"  gathers           {n('nodes: gather')} all, {n('nodes: gather_plain')} plain",
        f"  selects           {n('nodes: select')} ctx.wait, "
        f"{n('nodes: select_as_completed')} ctx.as_completed",
        f"  try/compensate    {n('nodes: try')}",
        f"  raises            {n('nodes: raise')}",
        f"  runs ended        {n('ended succeeded')} succeeded, {n('ended failed')} failed, "
        f"{n('ended cancelled')} cancelled",
    ]
    known = {k: v for k, v in stats.items() if k.startswith("known bug")}
    for key, value in sorted(known.items()):
        lines.append(f"  {key}: {value} (docs/fuzzing.md)")
    lines.append(f"  failures          {len(failures)}")
    for f in failures:
        lines.append("")
        lines.append(f)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
