"""The application the multi-worker tests run in real worker processes:

    python -m durable worker multi_app:app --db URL

Every step appends "run_id pos name pid" to the file named by $MULTI_EFFECTS when it begins,
then sleeps $MULTI_STEP_SLEEP seconds: a line proves that the step body ran in that process,
and the sleep keeps steps in flight long enough for the tests to pause or kill a worker in the
middle of one. The test process builds the same app (worker=False) to start runs by name.
"""

from __future__ import annotations

import asyncio
import os

from sdk import App, Context

EFFECTS_ENV = "MULTI_EFFECTS"
SLEEP_ENV = "MULTI_STEP_SLEEP"
STEPS = 5


def record_effect(run_id: str, pos: int, name: str) -> None:
    path = os.environ.get(EFFECTS_ENV)
    if not path:
        return
    line = f"{run_id} {pos} {name} {os.getpid()}\n".encode()
    # One O_APPEND write per line: lines of concurrent steps and processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def build_app(url: str | None = None, *, worker: bool = True) -> App:
    app = App(url, worker=worker)

    @app.step()
    async def hop(run_id: str, pos: int, value: int) -> int:
        record_effect(run_id, pos, "hop")
        await asyncio.sleep(float(os.environ.get(SLEEP_ENV, "0.01")))
        return value * 2 + pos

    @app.workflow(name="five")
    async def five(ctx: Context, x: int) -> int:
        value = x
        for pos in range(STEPS):
            value = await hop(ctx.run_id, pos, value)
        return value

    return app


def expected(x: int) -> int:
    value = x
    for pos in range(STEPS):
        value = value * 2 + pos
    return value


app = build_app()
