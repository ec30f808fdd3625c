"""The jsrun document's DAG example (seed 000), durable: run it with `python workflow_dag.py`.

Steps are JavaScript (each function's docstring), run in sandboxed V8 runtimes; `fetch_data`
is a Python integration function the JavaScript awaits. fetch_a and fetch_b run in parallel;
combine waits for both. Every step's result is recorded in the event log (./workflow_dag.db
unless DURABLE_DATABASE_URL says otherwise): kill the process and run it again with the same
run id, and completed steps are not run again.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from durable import events
from sdk import App

app = App(os.environ.get("DURABLE_DATABASE_URL", "sqlite:///workflow_dag.db"))


async def fetch_data(source: str) -> list[int]:
    # An integration point: in real life an HTTP call or a database query.
    await asyncio.sleep(0.1)
    return [1, 2, 3, 4, 5] if source == "a" else [10, 20, 30]


def my_workflow() -> Any:
    # Pass event and any other context to steps via ctx
    step = app.dag("my_workflow", api={"fetch_data": fetch_data}, config={"multiplier": 2})

    @step.do("fetch_a")
    async def fetch_a() -> None:
        """
        // Access event data via ctx
        const source = ctx.event.source_a || 'foo';
        return await fetch_data(source);
        """

    @step.do("fetch_b")
    async def fetch_b() -> None:
        """
        const source = ctx.event.source_b || 'bar';
        return await fetch_data(source);
        """

    @step.do("combine", depends=[fetch_a, fetch_b])
    async def combine() -> None:
        """
        const a = deps.fetch_a;
        const b = deps.fetch_b;
        // Use multiplier from context
        const multiplier = ctx.config.multiplier;
        return [...a, ...b].map(x => x * multiplier);
        """

    @step.do("aggregate", depends=[combine])
    async def aggregate() -> None:
        """
        const data = deps.combine;
        return {
            sum: data.reduce((a, b) => a + b, 0),
            count: data.length,
            event: ctx.event
        };
        """

    return step


async def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else None
    async with app:
        flow = my_workflow()
        handle = await app.start(
            flow, {"source_a": "a", "source_b": "b", "user_id": 123}, run_id=run_id
        )
        names: dict[int, str] = {}
        async for logged in app.watch(handle.run_id):
            event = logged.event
            if isinstance(event, events.StepStarted):
                names[event.pos] = event.name
                print(f"→ {event.name}")
            elif isinstance(event, events.StepCompleted):
                print(f"  ✓ {names[event.pos]}")
        result = await handle.result()
        print(f"Result: {result}")


if __name__ == "__main__":
    asyncio.run(main())
