"""ctx.set_event / app.get_event in one process: the value is in the log (one ValueSet at its
position) and in the values table; get_event waits for it, times out, says when the run ended
without it; a replay finds it recorded; a step body may not set one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import (
    EventNotSetError,
    InvalidIdError,
    RunNotFoundError,
    replay,
)
from durable.events import ValueSet
from sdk import App, Context, RetryPolicy, StepFailed


def build(app: App) -> None:
    @app.step()
    async def charge(amount: int) -> int:
        return amount * 2

    @app.workflow
    async def order(ctx: Context, amount: int) -> int:
        ctx.set_event("status", "started")
        total = await charge(amount)
        ctx.set_event("total", {"amount": total, "items": [1, 2]})
        await ctx.wait_for_signal("go")
        ctx.set_event("status", "shipped")
        return total

    @app.workflow
    async def silent(ctx: Context) -> str:
        await ctx.wait_for_signal("go")
        ctx.set_event("other", 1)
        return "done"


@pytest.fixture
async def app() -> Any:
    app = App("memory://", poll_interval=0.05)
    build(app)
    async with app:
        yield app


async def test_set_then_get_waits_and_gives_the_latest_value(app: App) -> None:
    handle = await app.start("order", 21)
    assert await app.get_event(handle.run_id, "total", timeout=10) == {
        "amount": 42,
        "items": [1, 2],
    }
    assert await app.get_event(handle.run_id, "status", timeout=10) == "started"
    waiter = asyncio.ensure_future(app.get_event(handle.run_id, "status", timeout=10))
    await app.signal(handle.run_id, "go")
    assert await handle.result(timeout=10) == 42
    await waiter  # woke (the old or the new value, whichever it read first)
    assert await app.get_event(handle.run_id, "status") == "shipped"
    assert await app.list_events(handle.run_id) == {
        "status": "shipped",
        "total": {"amount": 42, "items": [1, 2]},
    }
    logged = await app.engine.client.events(handle.run_id)
    sets = [e.event for e in logged if isinstance(e.event, ValueSet)]
    assert [(s.pos, s.key) for s in sets] == [(0, "status"), (2, "total"), (4, "status")]


async def test_get_event_waits_for_a_value_set_later(app: App) -> None:
    handle = await app.start("silent")
    waiter = asyncio.ensure_future(app.get_event(handle.run_id, "other", timeout=10))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await app.signal(handle.run_id, "go")
    assert await waiter == 1


async def test_timeout_not_set_at_the_end_and_unknown_runs(app: App) -> None:
    handle = await app.start("silent")
    with pytest.raises(TimeoutError, match=r"has not set event 'nope' within 0\.2 s"):
        await app.get_event(handle.run_id, "nope", timeout=0.2)
    waiter = asyncio.ensure_future(app.get_event(handle.run_id, "nope", timeout=10))
    await app.signal(handle.run_id, "go")
    with pytest.raises(EventNotSetError, match=r"ended \(succeeded\) without.*'other'"):
        await waiter
    with pytest.raises(EventNotSetError, match=r"ended \(succeeded\) without.*'nope'"):  # at once
        await app.get_event(handle.run_id, "nope")
    with pytest.raises(RunNotFoundError, match="'no-such-run'"):
        await app.get_event("no-such-run", "k", timeout=1)
    with pytest.raises(RunNotFoundError, match="'no-such-run'"):
        await app.list_events("no-such-run")
    with pytest.raises(InvalidIdError):
        await app.get_event(handle.run_id, "", timeout=1)


async def test_a_replay_finds_the_values_recorded_and_changed_code_diverges(app: App) -> None:
    handle = await app.start("order", 1)
    await app.get_event(handle.run_id, "total", timeout=10)
    await app.signal(handle.run_id, "go")
    await handle.result(timeout=10)
    logged = await app.engine.client.events(handle.run_id)
    same = await replay(handle.run_id, logged, app.registry)
    assert same.deterministic and not same.reached_end_of_history

    # A replay-only executor whose log ends before the second ValueSet stops there.
    cut = next(
        i for i, e in enumerate(logged) if isinstance(e.event, ValueSet) and e.event.pos == 2
    )
    prefix = await replay(handle.run_id, logged[:cut], app.registry)
    assert prefix.deterministic and prefix.reached_end_of_history
    assert prefix.positions_replayed == 3  # set_event at 0, the step at 1, set_event at 2

    changed = App("memory://", worker=False)

    @changed.step()
    async def charge(amount: int) -> int:
        return amount

    @changed.workflow
    async def order(ctx: Context, amount: int) -> int:
        return await charge(amount)  # where the log has ctx.set_event('status')

    report = await replay(handle.run_id, logged, changed.registry)
    assert not report.deterministic
    assert report.divergence is not None
    assert "ctx.set_event('status')" in str(report.divergence)


async def test_set_event_in_a_step_body_is_refused_clearly() -> None:
    app = App("memory://", poll_interval=0.05)
    holder: dict[str, Context] = {}

    @app.step(retry=RetryPolicy(max_attempts=1))
    async def sneaky() -> None:
        holder["ctx"].set_event("k", 1)

    @app.workflow
    async def wf(ctx: Context) -> str:
        holder["ctx"] = ctx
        try:
            await sneaky()
        except StepFailed as exc:
            return str(exc)
        return "set"

    async with app:
        handle = await app.start("wf")
        message = await handle.result(timeout=10)
        assert "ctx.set_event() is workflow code" in message
        assert "step 'sneaky'" in message
        assert await app.list_events(handle.run_id) == {}


async def test_bad_keys_and_values_are_refused(app: App) -> None:
    bad = App("memory://", poll_interval=0.05)

    @bad.workflow
    async def wf(ctx: Context, which: str) -> str:
        try:
            ctx.set_event("" if which == "key" else "k", object() if which == "value" else 1)
        except (ValueError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    async with bad:
        key = await (await bad.start("wf", "key")).result(timeout=10)
        assert key.startswith("ValueError: ctx.set_event() key must be a non-empty string")
        value = await (await bad.start("wf", "value")).result(timeout=10)
        assert "ctx.set_event('k')" in value
