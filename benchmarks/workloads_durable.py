"""The durable engine's side of the benchmark: one workload, one fresh process.

Uses only the public SDK, exactly as an application would, so the numbers include
everything a user pays for. Mirrors workloads_dbos.py step for step.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError, version

import bench_common as bc

from sdk import App


async def measure(args: bc.WorkloadArgs) -> float:
    app = App(f"sqlite:///{args.db}")

    @app.step()
    async def noop(i: int) -> int:
        return i

    # ctx is typed as object: whatever context type the SDK passes is accepted,
    # and the workload never touches it.
    @app.workflow(name="ten_steps")
    async def ten_steps(ctx: object, n: int) -> int:
        total = 0
        for i in range(bc.STEPS_PER_WORKFLOW):
            total += await noop(i)
        return total

    async def run_one(i: int) -> int:
        return int(await app.run(ten_steps, i))

    async def run_many(count: int) -> list[int]:
        # Started together, then awaited together: "all started, then all awaited".
        handles = await asyncio.gather(*(app.start(ten_steps, i) for i in range(count)))
        return [int(r) for r in await asyncio.gather(*(h.result() for h in handles))]

    # Opening the database and starting the worker stay outside the timing, as
    # DBOS.launch() does on the other side.
    async with app:
        return await bc.timed_async(args, run_one, run_many)


def _project_version() -> str:
    try:
        return version("durable")
    except PackageNotFoundError:
        return "source tree"


def main() -> None:
    args = bc.workload_args(bc.workload_parser(__doc__ or "").parse_args())
    elapsed = asyncio.run(measure(args))
    bc.emit_workload(
        args,
        elapsed,
        {"durable_version": _project_version(), "journal_mode": bc.journal_mode(args.db)},
    )


if __name__ == "__main__":
    main()
