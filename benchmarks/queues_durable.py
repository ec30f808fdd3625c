"""The durable engine's side of the queue benchmark (benchmarks/queues_bench.py): one scenario, one
fresh process, one fresh PostgreSQL database; prints one JSON line.

An App with its worker in this process, exactly as an application runs one (the worker's
options are the defaults unless --poll says otherwise): runs are started with app.start(...,
queue=...) and admitted by the worker's claim, as in production. Mirrors queues_dbos.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import bench_common as bc
import queues_common as qc

import sdk
from sdk import App, Context

SPANS: list[tuple[float, float]] = []  # (start, end) of every sleeping step, wall clock
STARTED: dict[str, float] = {}  # run key -> when its step began (after the gate)


def build(ns: Any) -> tuple[App, Any, Any, asyncio.Event]:
    app = App(ns.db, poll_interval=ns.poll)
    gate = asyncio.Event()
    nap_s = ns.step_ms / 1000
    if ns.scenario == "concurrency":
        app.queue(qc.QUEUE, concurrency=ns.concurrency)
    elif ns.scenario == "rate":
        app.queue(qc.QUEUE, rate_limit=(ns.limit, ns.period))
    elif ns.scenario == "fairness":
        # Our fairness needs no partition limit: admission ranks each partition's runs and
        # takes every partition's first before any partition's second.
        app.queue(qc.QUEUE, concurrency=ns.concurrency)
    else:
        app.queue(qc.QUEUE)  # ample: no limit at all

    @app.step()
    async def nap(key: str) -> str:
        await gate.wait()
        start = time.time()
        STARTED[key] = start
        await asyncio.sleep(nap_s)
        SPANS.append((start, time.time()))
        return key

    @app.workflow(name="noop")
    async def noop(ctx: Context, i: int) -> int:
        return i

    @app.workflow(name="sleeper")
    async def sleeper(ctx: Context, key: str) -> str:
        return await nap(key)

    return app, noop, sleeper, gate


async def overhead(app: App, noop: Any, ns: Any) -> dict[str, object]:
    """(1) and (5): no-op runs one at a time, plain and queued alternately: the time of the
    start call, and from before it to the result."""
    calls: dict[str, list[float]] = {"plain": [], "queued": []}
    totals: dict[str, list[float]] = {"plain": [], "queued": []}
    for i in range(ns.warmup + ns.runs):
        for kind in ("plain", "queued") if i % 2 == 0 else ("queued", "plain"):
            queue = qc.QUEUE if kind == "queued" else None
            t0 = time.perf_counter()
            handle = await app.start(noop, i, queue=queue)
            t1 = time.perf_counter()
            if await handle.result(timeout=60) != i:
                raise RuntimeError("a run returned a wrong result")
            t2 = time.perf_counter()
            if i >= ns.warmup:
                calls[kind].append(t1 - t0)
                totals[kind].append(t2 - t0)
    return {
        "start_call": {k: qc.summary_ms(v) for k, v in calls.items()},
        "end_to_end": {k: qc.summary_ms(v) for k, v in totals.items()},
    }


async def concurrency(app: App, sleeper: Any, gate: asyncio.Event, ns: Any) -> dict[str, object]:
    """(2) runs queued into a queue of concurrency N, steps sleeping step_ms. The gate holds
    the first admitted runs (and every slot) until all are queued: the drain of a full
    backlog is timed, from the gate's opening, not the speed of enqueueing."""
    t0 = time.perf_counter()
    handles = await asyncio.gather(
        *(app.start(sleeper, f"r{i}", queue=qc.QUEUE) for i in range(ns.runs))
    )
    opened = time.perf_counter()
    gate.set()
    await asyncio.gather(*(h.result(timeout=600) for h in handles))
    elapsed = time.perf_counter() - opened
    return {
        "seconds": elapsed,
        "enqueue_seconds": opened - t0,
        "runs_per_s": ns.runs / elapsed,
        "max_in_progress": qc.max_overlap(SPANS),
    }


async def rate(app: App, sleeper: Any, gate: asyncio.Event, ns: Any) -> dict[str, object]:
    """(3) all runs queued at once into a queue limited to `limit` admissions per `period`."""
    gate.set()
    t0 = time.perf_counter()
    handles = await asyncio.gather(
        *(app.start(sleeper, f"r{i}", queue=qc.QUEUE) for i in range(ns.runs))
    )
    await asyncio.gather(*(h.result(timeout=600) for h in handles))
    elapsed = time.perf_counter() - t0
    admitted = []
    for h in handles:
        where = await app.engine.store.run_queue(h.run_id)
        if where is None or where.admitted_at is None:
            raise RuntimeError(f"run {h.run_id} finished without an admission time")
        admitted.append(where.admitted_at)
    return rate_figures(admitted, elapsed, ns)


def rate_figures(admitted: list[float], elapsed: float, ns: Any) -> dict[str, object]:
    # The window is checked on the admission times the store recorded: what the limit
    # governs. Steps begin a little after their admission, by however busy the worker is.
    return {
        "seconds": elapsed,
        "admissions_per_s": qc.admission_rate(admitted, ns.period),
        "max_admitted_in_window": qc.max_in_window(admitted, ns.period),
    }


async def fairness(app: App, sleeper: Any, gate: asyncio.Event, ns: Any) -> dict[str, object]:
    """(4) the big tenant's runs queued, then the small tenant's; the gate holds the first
    admitted runs (and with them every slot) until everything is queued, so the small tenant
    finds the whole backlog ahead of it. Its wait: from the gate's opening to its step."""
    await asyncio.gather(
        *(
            app.start(sleeper, f"big{i}", queue=qc.QUEUE, partition_key=qc.BIG)
            for i in range(ns.runs)
        )
    )
    small = []
    for i in range(ns.small):  # after the big tenant's, one at a time, as a user's would
        small.append(await app.start(sleeper, f"small{i}", queue=qc.QUEUE, partition_key=qc.SMALL))
    opened = time.time()
    gate.set()
    await asyncio.gather(*(h.result(timeout=600) for h in small))
    waits = [STARTED[f"small{i}"] - opened for i in range(ns.small)]
    before = sum(1 for k, t in STARTED.items() if k.startswith("big") and t <= opened + max(waits))
    return {"small_wait": qc.summary_ms(waits), "big_started_before_last_small": before}


async def measure(ns: Any) -> dict[str, object]:
    app, noop, sleeper, gate = build(ns)
    async with app:
        if ns.scenario == "overhead":
            return await overhead(app, noop, ns)
        if ns.scenario == "concurrency":
            return await concurrency(app, sleeper, gate, ns)
        if ns.scenario == "rate":
            return await rate(app, sleeper, gate, ns)
        return await fairness(app, sleeper, gate, ns)


def main() -> None:
    ns = qc.parser(__doc__ or "").parse_args()
    figures = asyncio.run(measure(ns))
    info = {
        "durable_version": bc.project_version(),
        "source": str(Path(sdk.__file__).resolve().parent.parent),
        # None: the worker's default (5 s on PostgreSQL, whose LISTEN/NOTIFY wakes workers).
        "poll_interval_s": ns.poll,
    }
    bc.emit({"scenario": ns.scenario, "figures": figures, "info": info})


if __name__ == "__main__":
    main()
