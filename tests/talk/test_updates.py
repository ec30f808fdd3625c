"""Updates (issue 17 §2) in one process, on real SQLite files: a handler with steps answers its
caller durably; validators reject without writing to the log; one update id runs once; a run
that ends with an update pending tells its caller; DAG runs refuse updates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from durable import events as ev
from sdk import App, Context, Update, UpdateFailed, UpdateRejected

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path, **kw: Any) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05, **kw)


def build(app: App, calls: list[str]) -> Any:
    @app.step()
    async def charge(amount: int) -> int:
        calls.append(f"charge {amount}")
        return amount * 2

    @app.step()
    async def note(text: str) -> str:
        calls.append(f"note {text}")
        return text.upper()

    @app.workflow()
    async def cart(ctx: Context) -> list[Any]:
        items: list[Any] = []

        async def add(item: str, amount: int) -> dict[str, Any]:
            doubled = await charge(amount)
            label = await note(item)
            items.append(label)
            return {"item": label, "charged": doubled, "count": len(items)}

        def check(item: str, amount: int) -> None:
            if amount <= 0:
                raise ValueError(f"amount must be positive, not {amount}")

        ctx.on_update("add", add, validator=check)
        await ctx.wait_for_signal("checkout")
        return items

    return cart


async def test_a_handler_with_steps_returns_its_result(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []
    cart = build(app, calls)
    async with app:
        handle = await app.start(cart)
        first = await app.update(handle.run_id, "add", "tea", 3, timeout=20)
        second = await app.update(handle.run_id, "add", "milk", 1, timeout=20)
        await app.signal(handle.run_id, "checkout")
        assert await handle.result(20) == ["TEA", "MILK"]
        events = await app.events(handle.run_id)
        infos = await app.list_updates(handle.run_id)
    assert first == {"item": "TEA", "charged": 6, "count": 1}
    assert second == {"item": "MILK", "charged": 2, "count": 2}
    assert calls == ["charge 3", "note tea", "charge 1", "note milk"]
    accepted = [e.event for e in events if isinstance(e.event, ev.UpdateAccepted)]
    completed = [e.event for e in events if isinstance(e.event, ev.UpdateCompleted)]
    assert [a.name for a in accepted] == ["add", "add"]
    assert len(completed) == 2 and all(c.error is None for c in completed)
    assert [(i.status, i.result["item"]) for i in infos] == [
        ("completed", "TEA"),
        ("completed", "MILK"),
    ]


async def test_a_validator_rejects_without_touching_the_log(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []
    cart = build(app, calls)
    async with app:
        handle = await app.start(cart)
        await app.update(handle.run_id, "add", "tea", 1, timeout=20)
        before = await app.events(handle.run_id)
        with pytest.raises(UpdateRejected) as caught:
            await app.update(handle.run_id, "add", "gold", -5, update_id="bad-1", timeout=20)
        after = await app.events(handle.run_id)
        inbox = await app.engine.store.read_inbox([handle.run_id])
        info = await app.get_update(handle.run_id, "bad-1")
        await app.signal(handle.run_id, "checkout")
        assert await handle.result(20) == ["TEA"]
    assert caught.value.error.type == "ValueError"
    assert "amount must be positive, not -5" in caught.value.error.message
    assert len(after) == len(before)  # nothing entered the log
    assert inbox == []
    assert info.status == "rejected" and calls == ["charge 1", "note tea"]


async def test_no_handler_of_that_name_is_rejected_clearly(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    cart = build(app, [])
    async with app:
        handle = await app.start(cart)
        with pytest.raises(UpdateRejected) as caught:
            await app.update(handle.run_id, "remove", "tea", timeout=20)
        await app.signal(handle.run_id, "checkout")
        await handle.result(20)
    assert caught.value.error.type == "durable.NoUpdateHandler"
    assert "no update handler 'remove'" in caught.value.error.message
    assert "'add'" in caught.value.error.message


async def test_one_update_id_runs_once_for_two_callers(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []
    cart = build(app, calls)
    async with app:
        handle = await app.start(cart)
        both = await asyncio.gather(
            app.update(handle.run_id, "add", "tea", 2, update_id="u-1", timeout=20),
            app.update(handle.run_id, "add", "tea", 2, update_id="u-1", timeout=20),
        )
        again = await app.update(handle.run_id, "add", "tea", 2, update_id="u-1", timeout=20)
        await app.signal(handle.run_id, "checkout")
        assert await handle.result(20) == ["TEA"]
    assert both[0] == both[1] == again == {"item": "TEA", "charged": 4, "count": 1}
    assert calls == ["charge 2", "note tea"]


async def test_a_handler_that_raises_fails_its_caller(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def grumpy(ctx: Context) -> str:
        async def refuse() -> None:
            raise KeyError("nope")

        ctx.on_update("refuse", refuse)
        await ctx.wait_for_signal("stop")
        return "done"

    async with app:
        handle = await app.start(grumpy)
        with pytest.raises(UpdateFailed) as caught:
            await app.update(handle.run_id, "refuse", timeout=20)
        await app.signal(handle.run_id, "stop")
        assert await handle.result(20) == "done"
    assert caught.value.error.type == "KeyError"


async def test_a_run_ending_with_an_update_running_tells_its_caller(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def short(ctx: Context) -> str:
        async def slow() -> str:
            await ctx.sleep(30)
            return "late"

        ctx.on_update("slow", slow)
        await ctx.wait_for_signal("stop")
        return "over"

    async with app:
        handle = await app.start(short)
        waiting = asyncio.ensure_future(app.update(handle.run_id, "slow", timeout=20))
        for _ in range(200):
            if any(i.status == "accepted" for i in await app.list_updates(handle.run_id)):
                break
            await asyncio.sleep(0.02)
        await app.signal(handle.run_id, "stop")
        assert await handle.result(20) == "over"
        with pytest.raises(UpdateFailed) as caught:
            await waiting
        with pytest.raises(Exception, match=r"already ended succeeded: it takes no updates"):
            await app.update(handle.run_id, "slow", timeout=5)
    assert caught.value.error.type == "durable.RunEnded"


async def test_update_with_start_starts_then_updates(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []
    cart = build(app, calls)

    @app.workflow()
    async def other(ctx: Context) -> None:
        return None

    async with app:
        fresh = await app.update_with_start(
            cart, run_id="cart-1", update=Update("add", ("tea", 1), id="w-1"), timeout=20
        )
        existing = await app.update_with_start(
            cart, run_id="cart-1", update=Update("add", ("jam", 2)), timeout=20
        )
        with pytest.raises(Exception, match="already names a run of workflow 'cart'"):
            await app.update_with_start(other, run_id="cart-1", update=Update("add"))
        await app.signal("cart-1", "checkout")
        assert await app.engine.client.wait("cart-1")
        runs = await app.list_runs()
    assert fresh["count"] == 1 and existing["count"] == 2
    assert [r.run_id for r in runs] == ["cart-1"]


async def test_dag_runs_refuse_updates(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    flow = app.dag("napping", api={"nap": nap})
    flow.js("sleep", "return await nap(3);")
    app.register_dag(flow)
    async with app:
        handle = await app.start("napping")
        with pytest.raises(TypeError, match="DAG runs take no updates"):
            await app.update(handle.run_id, "anything", timeout=5)
        # A caller that does not know the workflow is a DAG: the worker rejects it.
        async with App(f"sqlite:///{tmp_path / 'runs.db'}", worker=False) as blind:
            with pytest.raises(UpdateRejected) as caught:
                await blind.update(handle.run_id, "anything", timeout=20)
        assert caught.value.error.type == "durable.UpdatesNotSupported"
        events = await app.events(handle.run_id)
        assert not any("Update" in e.type or "Signal" in e.type for e in events)
        await handle.result(30)


async def test_a_handler_that_is_not_async_is_refused_clearly(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def wrong(ctx: Context) -> None:
        def plain() -> int:
            return 1

        ctx.on_update("plain", plain)  # type: ignore[arg-type]

    async with app:
        handle = await app.start(wrong)
        with pytest.raises(Exception, match=r"fn must be an async function \(async def\)"):
            await handle.result(20)
