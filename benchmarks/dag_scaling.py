"""Does a DAG chain's cost per task stay flat as the chain grows? (The scheduler looks only at
the steps a transition can unblock; a full pass per transition would make it grow linearly.)

    python benchmarks/dag_scaling.py [--lengths 500,1000,2000,4000]

No-op YAML chains on a SQLite file (WAL, synchronous=FULL), one warm-up run, then one timed.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from durable.dag import parse_definition
from sdk import App


def chain_yaml(n: int) -> str:
    tasks = "".join(f"  t{i}: {{depends_on: [t{i - 1}]}}\n" for i in range(1, n))
    return f"name: chain{n}\ntasks:\n  t0: {{}}\n{tasks}"


async def per_task_ms(n: int, tmp: Path) -> float:
    app = App(f"sqlite:///{tmp / f'chain{n}.db'}")
    async with app:
        name = app.register_dag(parse_definition(chain_yaml(n), "chain.yaml"))
        await app.run_dag(name, timeout=600)  # warm-up
        started = time.perf_counter()
        result = await app.run_dag(name, timeout=600)
        elapsed = time.perf_counter() - started
    if result.status != "succeeded" or result.completed_count != n:
        raise SystemExit(f"chain of {n}: {result.status}, {result.completed_count}/{n} completed")
    return elapsed / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="500,1000,2000,4000")
    lengths = [int(n) for n in parser.parse_args().lengths.split(",")]
    with tempfile.TemporaryDirectory(prefix="durable-dag-scaling-") as tmp:
        figures = [(n, asyncio.run(per_task_ms(n, Path(tmp)))) for n in lengths]
    for n, ms in figures:
        print(f"chain of {n:>5,} no-op tasks: {ms:.3f} ms per task")
    first, last = figures[0][1], figures[-1][1]
    print(f"per-task cost at {lengths[-1]:,} / at {lengths[0]:,}: {last / first:.2f}x")


if __name__ == "__main__":
    main()
