"""The application the worker-scaling benchmark runs: `durable worker scaling_app:app`.

The same ten trivial steps as workloads (a) and (b). The driver registers the same workflow
through build() in an App(worker=False), so the runs it starts are ones these workers know.
Imports nothing else of the benchmark, so it loads the same way from any directory
(`benchmarks.scaling_app:app` from the repository root works too).
"""

from __future__ import annotations

from sdk import App

STEPS = 10  # bench_common.STEPS_PER_WORKFLOW, restated: see the module docstring
WORKFLOW = "ten_steps"


def build(url: str | None = None, *, worker: bool = True) -> App:
    # The run-creating driver and the CLI workers (which get --db) share this definition.
    app = App(url, worker=worker)

    @app.step()
    async def noop(i: int) -> int:
        return i

    @app.workflow(name=WORKFLOW)
    async def ten_steps(ctx: object, n: int) -> int:
        total = 0
        for i in range(STEPS):
            total += await noop(i)
        return total

    return app


app = build()
