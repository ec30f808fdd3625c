"""The durable engine's side of the benchmark: one workload, one fresh process.

Uses only the public SDK, exactly as an application would, so the numbers include
everything a user pays for. Mirrors workloads_dbos.py step for step. --db is a SQLite
file or a postgresql:// URL; the same code runs on both.

A build without a PostgreSQL store refuses the URL with DatabaseURLError when the app
opens: that is reported as "unavailable" (exit 0), not as a failure, so the harness works
before the store is merged and lights up after.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import bench_common as bc

import sdk
from sdk import App
from storage import DatabaseURLError


async def measure(args: bc.WorkloadArgs) -> float:
    app = App(args.db if bc.is_postgres(args.db) else f"sqlite:///{args.db}")

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


def main() -> None:
    args = bc.workload_args(bc.workload_parser(__doc__ or "").parse_args())
    # Which tree the engine came from: PYTHONPATH may point at a branch's work tree.
    info: dict[str, object] = {
        "durable_version": bc.project_version(),
        "source": str(Path(sdk.__file__).resolve().parent.parent),
    }
    try:
        elapsed = asyncio.run(measure(args))
    except DatabaseURLError as exc:
        if bc.NO_STORE_MESSAGE not in str(exc):
            raise
        bc.emit_unavailable(str(exc), info)
        return
    if not bc.is_postgres(args.db):
        info["journal_mode"] = bc.journal_mode(Path(args.db))
    bc.emit_workload(args, elapsed, info)


if __name__ == "__main__":
    main()
