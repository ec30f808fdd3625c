"""ctx.continue_as_new(): a run that loops forever keeps a bounded log, under one run id, and
loses nothing across its histories (signals received and not consumed, signals sent while it
continues, what waits in its inbox)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from durable import (
    InvalidTokenError,
    QueryError,
    RunCancelled,
    UpdateFailed,
    decode_record,
    fold,
    replay,
)
from durable._events import RunContinued, RunStarted, SignalReceived
from sdk import App, Context, write_stream


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    if request.param == "memory":
        return "memory://"
    return f"sqlite:///{tmp_path / 'c.db'}"


def entity_app(url: str, every: int = 5) -> App:
    """A counter entity: adds the `add` signals it gets, continuing as new every `every`
    signals with its total as the next history's input; done at `stop`."""
    app = App(url, poll_interval=0.2)

    @app.step()
    async def record(total: int) -> int:
        return total

    @app.workflow
    async def counter(ctx: Context, state: dict[str, Any]) -> int:
        total: int = state["total"]
        for _ in range(every):
            value = await ctx.wait_for_signal("add")
            if value == "stop":
                return total
            total = await record(total + value)
        ctx.continue_as_new({"total": total})

    return app


async def all_events(app: App, run_id: str) -> list[Any]:
    return [decode_record(r) for r in await app.engine.store.read_events(run_id)]


async def test_an_entity_continues_as_new_and_keeps_two_histories(url: str) -> None:
    async with entity_app(url) as app:
        handle = await app.start("counter", {"total": 0}, run_id="entity")
        for n in range(1, 24):
            await app.signal("entity", "add", n)
        await app.signal("entity", "add", "stop")
        assert await handle.result(timeout=60) == sum(range(1, 24))
        events = await all_events(app, "entity")
        chain = await app.histories("entity")
        info = await app.get_run("entity")
    # 23 signals, 5 per history: histories 0..4, the last one ending the run.
    assert [h.generation for h in chain] == [0, 1, 2, 3, 4]
    assert info.generation == 4 and info.history_start == chain[-1].first_seq
    assert [h.retained for h in chain] == [False, False, False, True, True]
    assert all(h.last_seq is not None for h in chain[:-1]) and chain[-1].last_seq is None
    # The log holds the current history and the one before it, and nothing older.
    assert events[0].seq == chain[3].first_seq
    starts = [e.event for e in events if isinstance(e.event, RunStarted)]
    assert [s.continuation.generation if s.continuation else 0 for s in starts] == [3, 4]
    continued = [e for e in events if isinstance(e.event, RunContinued)]
    assert [c.seq for c in continued] == [chain[3].last_seq]
    # Every seq of what is kept, in order, without a gap.
    assert [e.seq for e in events] == list(range(events[0].seq, events[-1].seq + 1))
    # Folding everything kept is folding the current history.
    current = [e for e in events if e.seq >= chain[-1].first_seq]
    assert fold("entity", events) == fold("entity", current)


async def test_received_signals_not_yet_consumed_are_carried_into_the_next_history(
    url: str,
) -> None:
    app = App(url, poll_interval=0.2)
    gate = asyncio.Event()

    @app.step()
    async def hold() -> None:
        await gate.wait()

    @app.workflow
    async def batcher(ctx: Context, generation: int) -> list[Any]:
        if generation == 0:
            await hold()  # the signals arrive meanwhile: received, nobody waits for them
            ctx.continue_as_new(1)
        return [await ctx.wait_for_signal("item") for _ in range(3)]

    async with app:
        handle = await app.start("batcher", 0, run_id="b")
        for n in range(3):
            await app.signal("b", "item", n)
        await _until(lambda: _received(app, "b", 3))
        gate.set()
        assert await handle.result(timeout=30) == [0, 1, 2]
        events = await all_events(app, "b")
    carried = [e for e in events if isinstance(e.event, SignalReceived)]
    # Three received in history 0, the same three carried into history 1 (inbox id 0).
    assert [e.event.inbox_id == 0 for e in carried] == [False] * 3 + [True] * 3


async def _received(app: App, run_id: str, count: int) -> bool:
    events = await all_events(app, run_id)
    return sum(isinstance(e.event, SignalReceived) for e in events) >= count


async def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_workflow_code_catching_exception_cannot_swallow_the_continuation(
    url: str,
) -> None:
    app = App(url)

    @app.workflow
    async def looper(ctx: Context, n: int) -> int:
        if n < 3:
            try:
                ctx.continue_as_new(n + 1)
            except Exception:
                return -1
        return n

    async with app:
        assert await (await app.start("looper", 0, run_id="l")).result(timeout=30) == 3
        assert [h.generation for h in await app.histories("l")] == [0, 1, 2, 3]


async def test_a_child_left_running_is_cancelled_like_at_the_runs_end(url: str) -> None:
    app = App(url, poll_interval=0.2)

    @app.workflow
    async def sleeper(ctx: Context) -> str:
        await ctx.sleep(3600)
        return "woke"

    @app.workflow
    async def parent(ctx: Context, n: int) -> str:
        if n == 0:
            await ctx.start_child(sleeper, run_id="kid")
            ctx.continue_as_new(1)
        return "done"

    async with app:
        assert await (await app.start("parent", 0, run_id="p")).result(timeout=30) == "done"
        with pytest.raises(RunCancelled, match="'kid' was cancelled"):
            await app.handle("kid").result(timeout=30)
        assert (await app.get_run("kid")).status == "cancelled"


async def test_a_bad_input_fails_the_call_and_writes_nothing(url: str) -> None:
    app = App(url)

    @app.workflow
    async def bad(ctx: Context) -> str:
        try:
            ctx.continue_as_new(object())
        except TypeError as exc:  # not encodable: raised in the workflow's own frame
            return f"refused: {type(exc).__name__}"
        return "continued"

    async with app:
        result = await (await app.start("bad", run_id="x")).result(timeout=30)
        assert result.startswith("refused"), result
        assert [h.generation for h in await app.histories("x")] == [0]


async def test_a_never_continued_run_has_one_history(url: str) -> None:
    app = App(url)

    @app.workflow
    async def plain(ctx: Context) -> int:
        return 1

    async with app:
        await (await app.start("plain", run_id="one")).result(timeout=30)
        (only,) = await app.histories("one")
        info = await app.get_run("one")
    assert (only.generation, only.first_seq, only.last_seq, only.retained) == (0, 1, None, True)
    assert (info.generation, info.history_start) == (0, 1)


async def test_a_cancel_requested_before_the_continuation_wins(url: str) -> None:
    app = App(url, poll_interval=0.2)
    entered = asyncio.Event()

    @app.step()
    async def hold() -> None:
        entered.set()
        await asyncio.sleep(3600)

    @app.workflow
    async def stubborn(ctx: Context, n: int) -> str:
        if n == 0:
            try:
                await hold()
            except asyncio.CancelledError:
                ctx.continue_as_new(1)  # trying to escape the cancel
        return "continued"

    async with app:
        handle = await app.start("stubborn", 0, run_id="s")
        await asyncio.wait_for(entered.wait(), 20)
        await app.cancel("s", "stop it")
        with pytest.raises(RunCancelled):
            await handle.result(timeout=30)
        assert [h.generation for h in await app.histories("s")] == [0]


async def test_a_continued_run_replays_deterministically(url: str) -> None:
    app = entity_app(url, every=2)
    async with app:
        handle = await app.start("counter", {"total": 0}, run_id="e")
        for n in (1, 2, 3, 4, 5):
            await app.signal("e", "add", n)
        await _until(lambda: _generation(app, "e", 2))
        report = await replay("e", await all_events(app, "e"), app.registry)
        assert report.deterministic and report.reached_end_of_history, report
        await app.signal("e", "add", "stop")
        assert await handle.result(timeout=30) == 15
        report = await replay("e", await all_events(app, "e"), app.registry)
    assert report.deterministic and report.status == "succeeded", report


async def _generation(app: App, run_id: str, wanted: int) -> bool:
    return (await app.get_run(run_id)).generation >= wanted


async def test_an_external_wait_does_not_outlive_its_history(url: str) -> None:
    """Positions restart in each history: the new history's wait at the old one's position
    gets a token of its own; the old token is refused, and cannot end the new wait."""
    app = App(url, poll_interval=0.2)
    tokens: list[str] = []

    @app.step()
    async def hand_out(token: str) -> None:
        tokens.append(token)

    @app.workflow
    async def hop(ctx: Context, generation: int) -> Any:
        wait = ctx.wait_external(name=f"g{generation}")
        await hand_out(wait.token)
        if generation == 0:
            ctx.continue_as_new(1)  # its wait left open
        return await wait

    async with app:
        handle = await app.start("hop", 0, run_id="h")
        await _until(lambda: _generation(app, "h", 1))
        await _until(lambda: _count(tokens, 2))
        old, new = tokens
        assert old != new
        with pytest.raises(InvalidTokenError):
            await app.complete(old, "stale")
        await app.complete(new, "fresh")
        assert await handle.result(timeout=30) == "fresh"


async def _count(items: list[str], n: int) -> bool:
    return len(items) >= n


async def test_a_query_handler_cannot_continue_the_run(url: str) -> None:
    app = App(url, poll_interval=0.2)

    @app.workflow
    async def entity(ctx: Context, n: int) -> int:
        ctx.on_query("restart", lambda: ctx.continue_as_new(n + 1))
        stopped: int = await ctx.wait_for_signal("stop")
        return stopped

    async with app:
        handle = await app.start("entity", 0, run_id="q")
        await _until(lambda: _waiting(app, "q"))
        with pytest.raises(QueryError, match=r"called ctx\.continue_as_new\(\)"):
            await app.query("q", "restart")
        await app.signal("q", "stop", 7)
        assert await handle.result(timeout=30) == 7
        assert [h.generation for h in await app.histories("q")] == [0]


async def _waiting(app: App, run_id: str) -> bool:
    return any(e.type == "WaitStarted" for e in await app.events(run_id))


async def test_stream_writes_of_each_history_all_land(url: str) -> None:
    """Positions restart in each history: a history's stream writes (from workflow code and
    from step bodies) are not mistaken for the previous history's and dropped."""
    app = App(url, poll_interval=0.2)

    @app.step()
    async def emit(generation: int) -> None:
        write_stream("log", f"step {generation}")

    @app.workflow
    async def chatty(ctx: Context, generation: int) -> int:
        ctx.write_stream("log", f"workflow {generation}")
        await emit(generation)
        if generation < 2:
            ctx.continue_as_new(generation + 1)
        ctx.close_stream("log")
        return generation

    async with app:
        assert await (await app.start("chatty", 0, run_id="w")).result(timeout=30) == 2
        got = [value async for value in app.read_stream("w", "log")]
    assert got == [f"{who} {g}" for g in range(3) for who in ("workflow", "step")]


async def test_an_update_running_at_the_continuation_fails_and_later_ones_are_answered(
    url: str,
) -> None:
    app = App(url, poll_interval=0.2)

    @app.workflow
    async def account(ctx: Context, generation: int) -> int:
        async def slow() -> str:
            await ctx.wait_for_signal("never")
            return "never"

        async def which() -> int:
            return generation

        ctx.on_update("slow", slow)
        ctx.on_update("which", which)
        if generation == 0:
            await ctx.wait_for_signal("go")
            ctx.continue_as_new(1)
        stopped: int = await ctx.wait_for_signal("stop")
        return stopped

    async with app:
        handle = await app.start("account", 0, run_id="a")
        assert await app.update("a", "which", timeout=30) == 0
        pending = asyncio.ensure_future(app.update("a", "slow", update_id="s1", timeout=30))
        await _until(lambda: _accepted(app, "a", 2))
        await app.signal("a", "go")
        with pytest.raises(UpdateFailed, match="continued as new"):
            await pending
        assert await app.update("a", "which", timeout=30) == 1  # the new history answers
        await app.signal("a", "stop", 3)
        assert await handle.result(timeout=30) == 3


async def _accepted(app: App, run_id: str, count: int) -> bool:
    events = await app.events(run_id)
    return sum(e.type == "UpdateAccepted" for e in events) >= count
