"""What re-executing a run from its log costs, and what the replay order's pause costs.

    python benchmarks/replay_cost.py                 # 1k and 10k steps, median of 3
    python benchmarks/replay_cost.py --sizes 1000    # other sizes

A run of N sequential steps and a run of N steps in 10 gathered chains are recorded once
(a real SQLite file); then durable.replay re-executes each from its log, the way a recovering
worker does, in this process: with the replay order as it is, and with its pause
(ReplayOrder.settle: a recorded outcome taken at once first lets the other ready tasks run)
switched off, the peer measured in the same run. Figures: seconds per replay, events per
second, and the ratio. A sequential replay alone on its loop never pauses, so its ratio should
be ~1; gathered chains pause a loop iteration or a few per outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import durable.runtime._order as order_module
from durable import replay
from sdk import App, Context


def build(app: App) -> tuple[Any, Any]:
    @app.step
    async def work(n: int) -> int:
        return n + 1

    @app.workflow
    async def sequential(ctx: Context, n: int) -> int:
        total = 0
        for i in range(n):
            total += await work(i)
        return total

    @app.workflow
    async def chains(ctx: Context, n: int) -> int:
        async def chain(start: int, count: int) -> int:
            total = 0
            for i in range(start, start + count):
                total += await work(i)
            return total

        per = n // 10
        return sum(await asyncio.gather(*(chain(c * per, per) for c in range(10))))

    return sequential, chains


async def measure(sizes: list[int], repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = App(f"sqlite:///{Path(tmp) / 'replay.db'}", poll_interval=0.05)
        sequential, chains = build(app)
        async with app:
            print(
                f"{'workflow':<12}{'steps':>8}{'events':>9}{'as is (s)':>12}"
                f"{'no pause (s)':>14}{'events/s':>12}{'ratio':>8}"
            )
            for size in sizes:
                for wf in (sequential, chains):
                    handle = await app.start(wf, size)
                    await handle.result(timeout=600)
                    events = await app.events(handle.run_id)
                    timings: dict[str, list[float]] = {"as is": [], "no pause": []}
                    for _ in range(repeats):
                        for mode in timings:
                            looks = order_module.SETTLE_LOOKS
                            if mode == "no pause":
                                order_module.SETTLE_LOOKS = 0
                            try:
                                began = time.perf_counter()
                                report = await replay(handle.run_id, events, app.registry)
                                timings[mode].append(time.perf_counter() - began)
                            finally:
                                order_module.SETTLE_LOOKS = looks
                            if mode == "as is" and not report.deterministic:
                                sys.exit(f"replay diverged: {report.divergence}")
                    as_is = statistics.median(timings["as is"])
                    bare = statistics.median(timings["no pause"])
                    print(
                        f"{wf.__name__:<12}{size:>8}{len(events):>9}{as_is:>12.3f}"
                        f"{bare:>14.3f}{len(events) / as_is:>12,.0f}{as_is / bare:>8.2f}"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(measure(args.sizes, args.repeats))


if __name__ == "__main__":
    main()
