"""Quick start: an order workflow that survives a SIGKILL.

    python examples/quickstart.py

The script starts itself as a worker subprocess, kills it with SIGKILL while the order is half
done, then opens the same SQLite file again: the run resumes where the log says it stopped.
Steps that completed before the kill are not run again; the one in flight runs again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sdk import App, Context, RetryPolicy

HERE = Path(__file__).resolve().parent
DB = HERE / "quickstart.db"
SIDE_EFFECTS = HERE / "quickstart.effects"

app = App(f"sqlite:///{DB}", lease_ttl=3.0, poll_interval=0.2)


def effect(what: str) -> None:
    """Record that a step really ran (an external side effect, e.g. an email sent)."""
    with SIDE_EFFECTS.open("a") as f:
        f.write(f"{what} pid={os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    print(f"  [pid {os.getpid()}] ran {what}", flush=True)


@app.step(retry=RetryPolicy(max_attempts=3, initial_delay=0.2))
async def reserve_stock(item: str, qty: int) -> str:
    effect(f"reserve_stock({item}, {qty})")
    return f"rsv-{item}-{qty}"


@app.step()
async def charge_card(order_id: str, amount: float) -> str:
    effect(f"charge_card({order_id}, {amount})")
    return f"pay-{order_id}"


@app.step()
async def pack(order_id: str) -> str:
    effect(f"pack({order_id})")
    await asyncio.sleep(1.0)  # slow: the kill lands while packing is in flight
    return f"box-{order_id}"


@app.step()
def ship(order_id: str, box: str) -> str:  # a plain function: runs in a worker thread
    effect(f"ship({order_id}, {box})")
    return f"trk-{order_id}"


@app.workflow(name="order", version="1")
async def order(ctx: Context, data: dict[str, str | int | float]) -> dict[str, str]:
    order_id = str(data["order_id"])
    # Two independent steps run concurrently.
    reservation, payment = await asyncio.gather(
        reserve_stock(str(data["item"]), int(data["qty"])),
        charge_card(order_id, float(data["amount"])),
    )
    box = await pack(order_id)
    tracking = await ship(order_id, box)
    return {"reservation": reservation, "payment": payment, "tracking": tracking}


ORDER = {"order_id": "A-1001", "item": "book", "qty": 2, "amount": 31.5}


async def run_worker_until_killed() -> None:
    async with app:
        await app.start(order, ORDER, run_id="order-A-1001")
        await asyncio.Event().wait()  # keep working until the parent kills us


async def resume() -> None:
    async with app:  # opening the database recovers every unfinished run
        result = await app.handle("order-A-1001").result(timeout=30)
        info = await app.get_run("order-A-1001")
    print(f"\nresult: {result}")
    print("steps:")
    for step in info.steps:
        print(f"  #{step.position} {step.name:14} {step.status:10} attempts={step.attempts}")


def main() -> None:
    if sys.argv[1:] == ["--worker"]:
        asyncio.run(run_worker_until_killed())
        return
    for path in (DB, Path(f"{DB}-wal"), Path(f"{DB}-shm"), SIDE_EFFECTS):
        path.unlink(missing_ok=True)
    print("1) starting a worker process and the order workflow")
    child = subprocess.Popen([sys.executable, __file__, "--worker"])
    deadline = time.monotonic() + 30
    while "pack(" not in (SIDE_EFFECTS.read_text() if SIDE_EFFECTS.exists() else ""):
        if time.monotonic() > deadline or child.poll() is not None:
            raise SystemExit("the worker did not reach the pack step")
        time.sleep(0.02)
    print(f"2) SIGKILL to pid {child.pid} while it is packing")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    print(
        f"3) reopening the database in this process (pid {os.getpid()}); the run resumes once "
        f"the dead worker's {app.worker_options.lease_ttl:g}s lease expires"
    )
    asyncio.run(resume())
    lines = SIDE_EFFECTS.read_text().splitlines()
    print("\nside effects, in order:")
    for line in lines:
        print(f"  {line}")
    names = [line.split("(")[0] for line in lines]
    assert names.count("charge_card") == 1, "the card must be charged exactly once"
    assert names.count("reserve_stock") == 1
    print("\ncharge_card and reserve_stock ran once; pack was in flight at the kill and ran again.")


if __name__ == "__main__":
    main()
