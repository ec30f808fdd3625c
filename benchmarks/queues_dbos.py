"""DBOS Transact's side of the queue benchmark (benchmarks/queues_bench.py): one scenario, one fresh
process, one fresh PostgreSQL database as DBOS's system database; prints one JSON line.

Runs only in the benchmark's private virtual environment (dbos_venv.py): DBOS is never a
dependency of the project, hence the unchecked import. Sync API (threads): DBOS's queue thread
dequeues into its thread pool. Queues are declared with DBOS.register_queue (DBOS 3.4.0's way;
the queue thread notices a new queue within its 1 s check and polls it every
polling_interval_sec, 1.0 by default, or --poll). Mirrors queues_durable.py.

Fairness: DBOS partitions a queue only when it has a partition limit; with one set equal to the
global concurrency (so that it limits nothing the global one does not), each poll visits the
partitions in random order. Ours ranks each partition's waiting runs and admits every
partition's first before any partition's second, with no partition limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, TypeVar, cast

import bench_common as bc
import queues_common as qc
from dbos import DBOS, SetEnqueueOptions  # type: ignore[import-not-found]

F = TypeVar("F", bound=Callable[..., object])
SPANS: list[tuple[float, float]] = []
STARTED: dict[str, float] = {}
GATE = threading.Event()
LOCK = threading.Lock()
NAP_S = [0.05]
# Waiting for a queued workflow's result polls the database (1 s by default); 5 ms keeps that
# poll out of the figures. A plain start's handle waits on a future, no polling.
RESULT_POLL_S = 0.005


def _step(fn: F) -> F:
    return cast(F, DBOS.step()(fn))


def _workflow(fn: F) -> F:
    return cast(F, DBOS.workflow()(fn))


@_step
def nap(key: str) -> str:
    GATE.wait()
    start = time.time()
    with LOCK:
        STARTED[key] = start
    time.sleep(NAP_S[0])
    with LOCK:
        SPANS.append((start, time.time()))
    return key


@_workflow
def noop(i: int) -> int:
    return i


@_workflow
def sleeper(key: str) -> str:
    return nap(key)


def wait_for_queue_thread(name: str) -> None:
    """DBOS starts a queue's dequeue thread on its next check (every second) after the queue
    is registered; a scenario that starts timing before then would time that check."""
    deadline = time.monotonic() + 30
    while not any(t.name == f"queue-worker-{name}" for t in threading.enumerate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"DBOS started no worker thread for queue {name}")
        time.sleep(0.01)


def register(ns: Any) -> Any:
    kwargs: dict[str, Any] = {"polling_interval_sec": ns.poll or 1.0}
    if ns.scenario == "concurrency":
        kwargs["global_concurrency"] = ns.concurrency
    elif ns.scenario == "rate":
        kwargs["limiter"] = {"limit": ns.limit, "period": ns.period}
    elif ns.scenario == "fairness":
        kwargs["global_concurrency"] = ns.concurrency
        kwargs["partition_concurrency"] = ns.concurrency
    queue = DBOS.register_queue(qc.QUEUE, **kwargs)
    wait_for_queue_thread(qc.QUEUE)
    return queue


def overhead(queue: Any, ns: Any) -> dict[str, object]:
    calls: dict[str, list[float]] = {"plain": [], "queued": []}
    totals: dict[str, list[float]] = {"plain": [], "queued": []}
    for i in range(ns.warmup + ns.runs):
        for kind in ("plain", "queued") if i % 2 == 0 else ("queued", "plain"):
            t0 = time.perf_counter()
            if kind == "queued":
                handle = queue.enqueue(noop, i)
                t1 = time.perf_counter()
                result = handle.get_result(polling_interval_sec=RESULT_POLL_S)
            else:
                handle = DBOS.start_workflow(noop, i)
                t1 = time.perf_counter()
                result = handle.get_result()
            t2 = time.perf_counter()
            if result != i:
                raise RuntimeError("a workflow returned a wrong result")
            if i >= ns.warmup:
                calls[kind].append(t1 - t0)
                totals[kind].append(t2 - t0)
    return {
        "start_call": {k: qc.summary_ms(v) for k, v in calls.items()},
        "end_to_end": {k: qc.summary_ms(v) for k, v in totals.items()},
    }


def drain(handles: list[Any]) -> None:
    for h in handles:
        h.get_result(polling_interval_sec=RESULT_POLL_S)


def concurrency(queue: Any, ns: Any) -> dict[str, object]:
    # Gated (see queues_durable.concurrency): the drain of a full backlog is timed.
    t0 = time.perf_counter()
    handles = [queue.enqueue(sleeper, f"r{i}") for i in range(ns.runs)]
    opened = time.perf_counter()
    GATE.set()
    drain(handles)
    elapsed = time.perf_counter() - opened
    return {
        "seconds": elapsed,
        "enqueue_seconds": opened - t0,
        "runs_per_s": ns.runs / elapsed,
        "max_in_progress": qc.max_overlap(SPANS),
    }


def rate(queue: Any, ns: Any) -> dict[str, object]:
    GATE.set()
    t0 = time.perf_counter()
    handles = [queue.enqueue(sleeper, f"r{i}") for i in range(ns.runs)]
    drain(handles)
    elapsed = time.perf_counter() - t0
    ids = [h.get_workflow_id() for h in handles]
    statuses = DBOS.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
    admitted = [s.dequeued_at / 1000 for s in statuses if s.dequeued_at is not None]
    if len(admitted) != ns.runs:
        raise RuntimeError(f"{ns.runs - len(admitted)} workflows have no dequeue time")
    return {
        "seconds": elapsed,
        "admissions_per_s": qc.admission_rate(admitted, ns.period),
        "max_admitted_in_window": qc.max_in_window(admitted, ns.period),
    }


def fairness(queue: Any, ns: Any) -> dict[str, object]:
    with SetEnqueueOptions(queue_partition_key=qc.BIG):
        for i in range(ns.runs):
            queue.enqueue(sleeper, f"big{i}")
    small = []
    with SetEnqueueOptions(queue_partition_key=qc.SMALL):
        for i in range(ns.small):
            small.append(queue.enqueue(sleeper, f"small{i}"))
    opened = time.time()
    GATE.set()
    drain(small)
    waits = [STARTED[f"small{i}"] - opened for i in range(ns.small)]
    with LOCK:
        before = sum(
            1 for k, t in STARTED.items() if k.startswith("big") and t <= opened + max(waits)
        )
    return {"small_wait": qc.summary_ms(waits), "big_started_before_last_small": before}


def main() -> None:
    ns = qc.parser(__doc__ or "").parse_args()
    NAP_S[0] = ns.step_ms / 1000
    DBOS(
        config={
            "name": "durable-bench-queues",
            "system_database_url": ns.db,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        queue = register(ns)
        scenarios = {"overhead": overhead, "concurrency": concurrency, "rate": rate}
        figures = scenarios.get(ns.scenario, fairness)(queue, ns)
    finally:
        GATE.set()  # a gated step must not hold DBOS's shutdown
        DBOS.destroy()
    info = {
        "dbos_version": version("dbos"),
        "psycopg_version": version("psycopg"),
        "polling_interval_s": ns.poll or 1.0,
    }
    bc.emit({"scenario": ns.scenario, "figures": figures, "info": info})


if __name__ == "__main__":
    main()
