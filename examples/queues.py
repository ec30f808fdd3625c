"""Queues: at most 2 emails at once across every worker, 5 a second at most, urgent ones
first, one per order, and a reminder that waits.

    python examples/queues.py      # queues 8 runs, runs a worker until they end, prints the order

Every worker with this app admits runs from the queue within its limits, which live in the
database (so they hold across all workers). Look at it with `durable queues list|show`.
"""

from __future__ import annotations

import asyncio
import time

from sdk import App, Context

app = App(poll_interval=0.1)  # DURABLE_DATABASE_URL, or ./durable.db
app.queue("emails", concurrency=2, worker_concurrency=2, rate_limit=(5, 1.0))
ORDER: list[str] = []


@app.step()
async def deliver(to: str) -> str:
    await asyncio.sleep(0.2)  # the mail server
    return f"sent to {to}"


@app.workflow
async def email(ctx: Context, to: str) -> str:
    ORDER.append(to)
    return await deliver(to)


async def main() -> None:
    async with app:
        tag = str(int(time.time()))  # new dedupe keys on each run of the example
        handles = [
            await app.start(email, f"user{n}@example.com", queue="emails", dedupe_key=f"{tag}-{n}")
            for n in range(5)
        ]
        # Queued last, admitted first: higher priority goes ahead of those still waiting.
        handles.append(await app.start(email, "ceo@example.com", queue="emails", priority=10))
        # The same order again: its run's handle, not a second email.
        again = await app.start(
            email, "user0@example.com", queue="emails", dedupe_key=f"{tag}-0", if_duplicate="return"
        )
        assert again.run_id == handles[0].run_id
        # Not before 1 s from now (kept in the database: a restart does not lose it).
        handles.append(await app.start(email, "reminder@example.com", queue="emails", delay=1.0))
        for h in handles:
            await h.result(timeout=60)
        (info,) = await app.list_queues()
        print(f"queue {info.name}: limit {info.concurrency}, waiting {info.waiting}")
        print("admitted in this order:", ", ".join(ORDER))


if __name__ == "__main__":
    asyncio.run(main())
