"""The queue benchmark's tables (benchmarks/queues_bench.py): each figure beside the peer's,
measured in the same run, and the ratio between them at the same poll interval."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from queues_bench import Job, Sizes

ENGINE = {"durable": "durable", "dbos": "DBOS"}


def _label(job: Job) -> str:
    if job.poll is not None:
        return f"{ENGINE[job.engine]}, poll {job.poll * 1000:g} ms"
    default = "5 s + NOTIFY" if job.engine == "durable" else "1 s"
    return f"{ENGINE[job.engine]}, default poll ({default})"


def _find(jobs: Sequence[Job], engine: str, scenario: str, poll: float | None) -> Job | None:
    for job in jobs:
        if (job.engine, job.scenario, job.poll) == (engine, scenario, poll):
            return job
    return None


def _ratio(ours: float | None, theirs: float | None, higher_is_better: bool) -> str:
    """How many times better durable is than DBOS at the same poll ('' without both)."""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return ""
    times = ours / theirs if higher_is_better else theirs / ours
    return f"{times:.2f}x"


def _section(
    jobs: Sequence[Job],
    scenario: str,
    title: str,
    columns: Sequence[str],
    cells: Callable[[dict[str, Any]], tuple[list[str], float]],
    higher_is_better: bool,
) -> list[str]:
    lines = [title, f"    {'':<38} " + "".join(f"{c:>14}" for c in columns)]
    polls = sorted({j.poll for j in jobs if j.scenario == scenario}, key=lambda p: p or 0.0)
    for poll in polls:
        key: dict[str, float] = {}
        for engine in ("durable", "dbos"):
            job = _find(jobs, engine, scenario, poll)
            if job is None:
                continue
            if job.error:
                lines.append(f"    {_label(job):<38} FAILED")
                continue
            texts, key[engine] = cells(job.result["figures"])
            lines.append(f"    {_label(job):<38} " + "".join(f"{t:>14}" for t in texts))
        ratio = _ratio(key.get("durable"), key.get("dbos"), higher_is_better)
        if ratio:
            lines.append(f"    {'durable vs DBOS at this poll':<38} {ratio:>14}")
    return [*lines, ""]


def _ms(value: float) -> str:
    return f"{value:,.2f} ms" if value < 100 else f"{value:,.0f} ms"


def render(
    jobs: Sequence[Job], sizes: Sizes, where: str, seconds: float
) -> tuple[str, dict[str, Any]]:
    out = [
        "Queues, durable vs DBOS 3.4.0, measured together in one run.",
        f"Database: {where}.",
        "Each engine in a fresh process on a fresh database of that server, its worker (DBOS:",
        "its queue thread) in the same process.",
        "",
    ]
    slow_polls = any(j.poll is None for j in jobs)

    def overhead(f: dict[str, Any]) -> tuple[list[str], float]:
        plain, queued = (
            f["end_to_end"]["plain"]["median_ms"],
            f["end_to_end"]["queued"]["median_ms"],
        )
        extra = queued - plain
        return [_ms(plain), _ms(queued), _ms(extra)], extra

    n, slow = sizes.overhead, sizes.overhead_slow
    out += _section(
        jobs,
        "overhead",
        f"(1) dispatch overhead: {n} no-op runs each way, one at a time"
        + (f" (DBOS at its default poll: {slow})" if slow_polls else "")
        + ",\n    a queue with no limits; median time from the start call to the result",
        ["plain", "queued", "overhead"],
        overhead,
        higher_is_better=False,
    )

    def start_cost(f: dict[str, Any]) -> tuple[list[str], float]:
        plain, queued = (
            f["start_call"]["plain"]["median_ms"],
            f["start_call"]["queued"]["median_ms"],
        )
        return [_ms(plain), _ms(queued), _ms(queued - plain)], queued

    out += _section(
        jobs,
        "overhead",
        "(5) the start call alone, from the same runs; median (the ratio: of the queued call)",
        ["plain", "queued", "extra"],
        start_cost,
        higher_is_better=False,
    )

    def throughput(f: dict[str, Any]) -> tuple[list[str], float]:
        rate = f["runs_per_s"]
        return [f"{rate:,.1f}/s", f"{rate / 200:.0%}", str(f["max_in_progress"])], rate

    out += _section(
        jobs,
        "concurrency",
        f"(2) concurrency 10, {sizes.concurrency} runs of one 50 ms step"
        + (f" ({sizes.concurrency_slow} at a default poll)" if slow_polls else "")
        + ": draining a full backlog",
        ["runs/s", "of 200/s", "max at once"],
        throughput,
        higher_is_better=True,
    )

    limit, period = sizes.rate_limit, sizes.rate_period
    ideal = limit / period

    def rate(f: dict[str, Any]) -> tuple[list[str], float]:
        got = f["admissions_per_s"]
        worst = f"{f['max_admitted_in_window']} / {limit}"
        return [f"{got:,.1f}/s", f"{got / ideal:.0%}", worst], got

    out += _section(
        jobs,
        "rate",
        f"(3) rate limit {limit} per {period:g} s, {sizes.rate_runs} runs queued at once; "
        f"max/window: the most admitted\n    in any {period:g} s window (must not exceed {limit})",
        ["admitted/s", f"of {ideal:g}/s", "max/window"],
        rate,
        higher_is_better=True,
    )

    def fairness(f: dict[str, Any]) -> tuple[list[str], float]:
        wait = f["small_wait"]
        before = str(f["big_started_before_last_small"])
        return [_ms(wait["p99_ms"]), _ms(wait["max_ms"]), before], wait["p99_ms"]

    out += _section(
        jobs,
        "fairness",
        f"(4) fairness: {sizes.big:,} runs of one tenant, then {sizes.small} of another; "
        "concurrency 10,\n    50 ms steps; the small tenant's wait, from the moment the backlog "
        "starts draining to its step",
        ["p99", "max", "big before"],
        fairness,
        higher_is_better=False,
    )
    out += [
        "DBOS's fairness: a partitioned queue (partition_concurrency = global concurrency = 10,",
        "so the partition limit limits nothing more), whose poll visits partitions in random",
        "order; durable's: no partition limit, the partition holding the fewest admitted runs",
        "first. 'big before': big-tenant runs whose step began before the small tenant's",
        "last. DBOS's queued results are awaited with a 5 ms result poll.",
        f"({seconds:.0f} s in all)",
    ]
    payload = {
        "where": where,
        "sizes": sizes.__dict__,
        "jobs": [
            {
                "engine": j.engine,
                "scenario": j.scenario,
                "poll": j.poll,
                "args": j.args,
                "result": j.result,
                "error": j.error,
            }
            for j in jobs
        ],
    }
    return "\n".join(out), payload
