"""durable.replay: the same executor as live, with nothing allowed to run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from durable import replay, state_at
from sdk import App, Context


def shop(path: Path, *, variant: str, gate: asyncio.Event | None = None) -> tuple[App, list[str]]:
    app = App(f"sqlite:///{path}", poll_interval=0.05)
    ran: list[str] = []

    @app.step()
    async def reserve(item: str) -> str:
        ran.append("reserve")
        return f"rsv-{item}"

    @app.step()
    async def charge(amount: int) -> str:
        ran.append("charge")
        if gate is not None:
            await gate.wait()
        return f"pay-{amount}"

    @app.step()
    async def refund(amount: int) -> str:
        ran.append("refund")
        return f"ref-{amount}"

    @app.workflow(name="order")
    async def order(ctx: Context, amount: int) -> str:
        r = await reserve("book")
        if variant == "renamed":
            p = await refund(amount)  # position 1 recorded 'charge'
        else:
            p = await charge(amount)
        suffix = "!" if variant == "new-result" else ""
        return f"{r}/{p}{suffix}"

    return app, ran


async def test_unchanged_code_replays_cleanly_and_runs_nothing(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    app, ran = shop(db, variant="v1")
    async with app:
        assert await app.run("order", 5, run_id="o") == "rsv-book/pay-5"
        events = await app.events("o")
    ran.clear()
    report = await replay("o", events, shop(db, variant="v1")[0].registry)
    assert report.deterministic and report.divergence is None
    assert report.positions_replayed == 2 and report.events == len(events)
    assert ran == []


async def test_a_different_step_at_a_recorded_position_is_a_divergence(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    app, _ran = shop(db, variant="v1")
    async with app:
        await app.run("order", 5, run_id="o")
        events = await app.events("o")
    changed, changed_ran = shop(db, variant="renamed")
    report = await replay("o", events, changed.registry)
    assert not report.deterministic
    assert report.divergence is not None
    assert report.divergence.position == 1
    assert report.divergence.recorded == "step 'charge'"
    assert report.divergence.requested == "step 'refund'"
    assert report.divergence.where.startswith(f"{__file__}:")
    assert changed_ran == []


async def test_a_different_final_result_is_a_divergence(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    app, _ran = shop(db, variant="v1")
    async with app:
        await app.run("order", 5, run_id="o")
        events = await app.events("o")
    report = await replay("o", events, shop(db, variant="new-result")[0].registry)
    assert not report.deterministic
    assert report.divergence is not None and report.divergence.position is None
    assert "different result" in report.divergence.recorded


async def test_an_unfinished_run_replays_up_to_the_end_of_its_history(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    gate = asyncio.Event()
    app, ran = shop(db, variant="v1", gate=gate)
    async with app:
        await app.start("order", 5, run_id="o")
        while "charge" not in ran:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        events = await app.events("o")
    report = await replay("o", events, shop(db, variant="v1")[0].registry)
    assert report.deterministic
    assert report.reached_end_of_history
    assert report.status == "running"
    state = state_at("o", events, 1)
    assert state.steps == {} and state.workflow == "order"


async def test_replay_of_a_run_cancelled_in_a_wait(tmp_path: Path) -> None:
    """Found by the workflow fuzzer: replaying a run that ended cancelled in a durable wait
    raised the recorded CancelledError out of replay() (`durable replay` crashed) instead of
    returning a report."""
    app = App(f"sqlite:///{tmp_path / 'c.db'}", lease_ttl=1.0, poll_interval=0.05)

    @app.workflow(name="waits")
    async def waits(ctx: Context) -> str:
        return str(await ctx.wait_for_signal("never"))

    async with app:
        handle = await app.start(waits, run_id="w")
        for _ in range(200):  # until the wait is recorded
            if any(e.type == "WaitStarted" for e in await app.events("w")):
                break
            await asyncio.sleep(0.01)
        await app.cancel("w")
        for _ in range(200):
            if await handle.status() == "cancelled":
                break
            await asyncio.sleep(0.01)
        assert await handle.status() == "cancelled"
        report = await replay("w", await app.events("w"), app.registry)
    assert report.deterministic, report.divergence
    assert report.status == "cancelled"
