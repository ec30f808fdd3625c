"""The workflows whose histories are checked in next to this file (regenerate.py writes them).

Changing what a workflow here does would make its golden file diverge: that is the point.
Add a new workflow (and regenerate) rather than edit one. `variant` exists only so that
tests/test_golden.py can build deliberately changed copies and check that replay catches them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable import ChildRunFailed
from sdk import App, Context, RetryPolicy, StepFailed, current_step

# run id -> (workflow, input): what regenerate.py runs, one golden file per run (plus one per
# child run it started: `children` writes children.json, children.0.json and children.1.json).
GOLDEN_RUNS: dict[str, tuple[str, Any]] = {
    "golden-steps": ("steps", 4),
    "golden-retries": ("retries", 7),
    "golden-caught": ("caught", 25),
    "golden-markers": ("markers", None),
    "golden-fanout": ("fanout", 3),
    "golden-timer": ("timer", 5),
    "golden-signals": ("signals", None),
    "golden-children": ("children", 3),
    "golden-patched": ("patched", None),
    "golden-select": ("select", None),
    "golden-waitcancel": ("steps", 4),
    "golden-continued": ("continued", 0),
    "golden-updates": ("updated", None),
}

# run id -> the reason it is cancelled with while it waits in the queue GOLDEN_QUEUE (started
# there with a long delay): the log of a queued run cancelled before it ever started.
GOLDEN_QUEUE = "golden"
GOLDEN_CANCELLED_WAITING: dict[str, str] = {"golden-waitcancel": "not needed"}

# run id -> the signals regenerate.py sends it while it runs, in order, as (waits, name,
# payload): each is sent once the run's log holds `waits` WaitStarted events (0: at once,
# right after the run starts, so before the run reaches its first wait).
GOLDEN_SIGNALS: dict[str, list[tuple[int, str, Any]]] = {
    "golden-signals": [(0, "approve", {"by": "ann"}), (2, "approve", {"by": "bob"})],
    # Sent before the run waits: received in history 0, carried into the next ones.
    "golden-continued": [(0, "extra", "carried")],
}


# run id -> the updates regenerate.py sends it, in order, as (name, args): each once the
# previous one has its answer (a rejected one included), then the signal "close".
GOLDEN_UPDATES: dict[str, list[tuple[str, tuple[Any, ...]]]] = {
    "golden-updates": [("deposit", (5,)), ("deposit", (-1,)), ("deposit", (7,))],
}


def make_app(url: str | None = None, *, variant: str = "current") -> App:
    """variant: "current" (the code the golden files were made with), "renamed" (steps calls
    `welcome` where it called `greet`), "inserted" (steps calls one more `greet` first),
    "reordered" (markers asks for ctx.random() before ctx.now()), "signalled" (timer waits for
    a signal where it slept), "slept" (signals sleeps where it waited for its first signal),
    "cubed" (children runs `cube` where it ran `square`), "deprecated" (patched with its patch
    removed the documented way: ctx.deprecate_patch() and the old branch dropped)."""
    app = App(url, poll_interval=0.05)
    app.queue(GOLDEN_QUEUE)

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

    @app.workflow
    async def timer(ctx: Context, n: int) -> int:
        total = await add(n, 1)
        if variant == "signalled":
            await ctx.wait_for_signal("wake")
        else:
            await ctx.sleep(0.2)  # a durable timer, short enough for the run to end at once
        return await add(total, 10)

    @app.workflow
    async def signals(ctx: Context) -> list[Any]:
        # A step first: regenerate.py's first signal arrives while it runs, before any wait.
        got: list[Any] = [await slow_square(2)]
        if variant == "slept":
            await ctx.sleep(0.25)
        else:
            got.append(await ctx.wait_for_signal("approve"))  # sent before this wait
        got.append(await ctx.wait_for_signal("approve"))  # sent while this one waits
        try:
            await ctx.wait_for_signal("approve", timeout=0.2)  # never sent: times out
        except TimeoutError:
            got.append("timed out")
        return got

    @app.workflow
    async def square(ctx: Context, n: int) -> int:
        if n < 0:
            raise ValueError(f"cannot square {n}")
        return await add(n * n, 0)

    @app.workflow
    async def cube(ctx: Context, n: int) -> int:
        return n * n * n

    @app.workflow
    async def children(ctx: Context, n: int) -> dict[str, Any]:
        if variant == "cubed":
            result = await ctx.run_child(cube, n)
        else:
            result = await ctx.run_child(square, n)
        try:
            await ctx.run_child(square, -n)
            failure = "none"
        except ChildRunFailed as exc:  # the parent handles its child's failure: it succeeds
            failure = f"{exc.status}: {exc.error}"
        return {"squared": result, "failure": failure, "greeting": await greet("parent")}

    @app.workflow
    async def select(ctx: Context) -> dict[str, Any]:
        # A step raced against a long timer: the step wins, the timer is cancelled.
        timer = asyncio.ensure_future(ctx.sleep(60))
        squared = asyncio.ensure_future(slow_square(4))
        done, pending = await ctx.wait([timer, squared])
        for fut in pending:
            fut.cancel()
        # A signal nobody sends, raced against a durable timeout.
        never = asyncio.ensure_future(ctx.wait_for_signal("never"))
        late, _ = await ctx.wait([never], timeout=0.1)
        never.cancel()
        # Three steps, in the order they completed (recorded: on replay all are done at once).
        order = [await aw for aw in ctx.as_completed([slow_square(3), add(1, 1), greet("sel")])]
        return {"step won": squared in done, "timed out": not late, "order": order}

    @app.workflow
    async def patched(ctx: Context) -> str:
        if variant == "deprecated":
            ctx.deprecate_patch("express-shipping")
            return await greet("express")
        if ctx.patched("express-shipping"):
            return await greet("express")
        return await greet("standard")

    @app.workflow
    async def continued(ctx: Context, n: int) -> dict[str, Any]:
        # ctx.continue_as_new() twice: the file holds the last history and the one before
        # (history 0 is trimmed), each starting with a RunStarted that continues the run.
        value = await add(n, 1)
        if n < 2:
            ctx.continue_as_new(value)
        return {"value": value, "extra": await ctx.wait_for_signal("extra")}

    @app.workflow
    async def updated(ctx: Context) -> list[int]:
        totals: list[int] = []

        async def deposit(amount: int) -> int:
            total = await add(totals[-1] if totals else 0, amount)
            totals.append(total)
            return total

        def positive(amount: int) -> None:
            if amount <= 0:
                raise ValueError("deposits are positive")

        ctx.on_update("deposit", deposit, validator=positive)
        await ctx.wait_for_signal("close")
        return totals

    return app


app = make_app()
renamed_app = make_app(variant="renamed")
inserted_app = make_app(variant="inserted")
reordered_app = make_app(variant="reordered")
