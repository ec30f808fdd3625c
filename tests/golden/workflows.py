"""The workflows whose histories are checked in next to this file (regenerate.py writes them).

Changing what a workflow here does would make its golden file diverge: that is the point.
Add a new workflow (and regenerate) rather than edit one. `variant` exists only so that
tests/test_golden.py can build deliberately changed copies and check that replay catches them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sdk import App, Context, RetryPolicy, StepFailed, current_step

# run id -> (workflow, input): what regenerate.py runs, one golden file per run.
GOLDEN_RUNS: dict[str, tuple[str, Any]] = {
    "golden-steps": ("steps", 4),
    "golden-retries": ("retries", 7),
    "golden-caught": ("caught", 25),
    "golden-markers": ("markers", None),
    "golden-fanout": ("fanout", 3),
}


def make_app(url: str | None = None, *, variant: str = "current") -> App:
    """variant: "current" (the code the golden files were made with), "renamed" (steps calls
    `welcome` where it called `greet`), "inserted" (steps calls one more `greet` first),
    "reordered" (markers asks for ctx.random() before ctx.now())."""
    app = App(url, poll_interval=0.05)

    @app.step
    async def add(a: int, b: int) -> int:
        return a + b

    @app.step
    async def greet(name: str) -> str:
        return f"hello {name}"

    @app.step
    async def welcome(name: str) -> str:
        return f"welcome {name}"

    # Fails its first two attempts: the history records two retryable StepFailed events.
    @app.step(retry=RetryPolicy(max_attempts=3, initial_delay=0.01, backoff=1.0))
    async def flaky(n: int) -> int:
        attempt = current_step().attempt
        if attempt < 3:
            raise ConnectionError(f"attempt {attempt} lost the connection")
        return n * 10

    @app.step
    async def charge(amount: int) -> str:
        raise ValueError(f"card declined for {amount}")

    @app.step
    async def invoice(amount: int) -> str:
        return f"invoice-{amount}"

    @app.step
    async def slow_square(n: int) -> int:
        await asyncio.sleep(0.05)  # long enough for the gathered steps to overlap in time
        return n * n

    @app.workflow
    async def steps(ctx: Context, n: int) -> dict[str, Any]:
        total = await add(n, 1)
        if variant == "inserted":
            await greet("extra")
        if variant == "renamed":
            greeting = await welcome("golden")
        else:
            greeting = await greet("golden")
        total = await add(total, 10)
        return {"total": total, "greeting": greeting}

    @app.workflow
    async def retries(ctx: Context, n: int) -> int:
        return await flaky(n)

    @app.workflow
    async def caught(ctx: Context, amount: int) -> dict[str, str]:
        try:
            paid = await charge(amount)
        except StepFailed as exc:  # the workflow handles the failure: the run succeeds
            paid = f"declined ({exc.error.type})"
        return {"payment": paid, "invoice": await invoice(amount)}

    @app.workflow
    async def markers(ctx: Context) -> dict[str, Any]:
        if variant == "reordered":
            chance = ctx.random()
            now = ctx.now()
        else:
            now = ctx.now()
            chance = ctx.random()
        ident = ctx.uuid4()
        # Branching on recorded values is deterministic: replay gets the same ones back.
        label = await greet("heads" if chance < 0.5 else "tails")
        return {"year": now.year, "chance": chance, "id": str(ident), "label": label}

    @app.workflow
    async def fanout(ctx: Context, n: int) -> int:
        squares = await asyncio.gather(*(slow_square(i) for i in range(1, n + 1)))
        return await add(sum(squares), 0)

    return app


app = make_app()
renamed_app = make_app(variant="renamed")
inserted_app = make_app(variant="inserted")
reordered_app = make_app(variant="reordered")
