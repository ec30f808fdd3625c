"""The application behind the README's CLI and HTTP API commands.

    python examples/myapp.py               # start orders 1, 2 and 3; return once each waits
    durable worker examples.myapp:app      # execute them (and later runs) until Ctrl-C

The database is ./durable.db, or $DURABLE_DATABASE_URL. Order 2's card is declined, so that
run fails; orders 1 and 3 wait for an `approve` signal after charging the card.
"""

from __future__ import annotations

import asyncio
import sys

from sdk import App, Context, RetryPolicy

app = App()


@app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.1))
async def reserve(order_id: str, item: str) -> str:
    return f"rsv-{order_id}-{item}"


@app.step()
async def charge(order_id: str, card: str) -> str:
    if card == "declined":
        raise ValueError(f"card declined for order {order_id}")
    return f"pay-{order_id}"


@app.step()
async def ship(order_id: str) -> str:
    return f"trk-{order_id}"


@app.workflow(name="order", version="1")
async def order(ctx: Context, data: dict[str, str]) -> dict[str, str]:
    order_id = data["id"]
    reservation = await reserve(order_id, data["item"])
    payment = await charge(order_id, data["card"])
    try:
        answer = await ctx.wait_for_signal("approve", timeout=7 * 86400)
    except TimeoutError:
        answer = "expired"
    tracking = await ship(order_id)
    return {
        "reservation": reservation,
        "payment": payment,
        "approval": answer,
        "tracking": tracking,
    }


ORDERS = {
    "order-1": {"id": "1", "item": "book", "card": "visa"},
    "order-2": {"id": "2", "item": "lamp", "card": "declined"},
    "order-3": {"id": "3", "item": "desk", "card": "visa"},
}


async def main() -> None:
    async with app:
        for run_id, data in ORDERS.items():
            await app.start(order, data, run_id=run_id)  # idempotent on run_id
        for _ in range(300):  # until each run has ended or waits for its signal
            infos = [await app.get_run(run_id) for run_id in ORDERS]
            if all(i.status not in ("pending", "running") or i.waiting_on for i in infos):
                break
            await asyncio.sleep(0.1)
    for info in infos:
        waiting = f" (waiting on {', '.join(info.waiting_on)})" if info.waiting_on else ""
        print(f"{info.run_id}: {info.status}{waiting}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
