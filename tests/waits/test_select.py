"""A deterministic select (issue 14, section 2): ctx.wait and ctx.as_completed record which
awaitables completed, in what order, so that live execution, the replay of the final log and the
recovery of a run closed mid-way all take the same path, even where a replay would see another
awaitable finish first. Raw asyncio.wait / as_completed / wait_for over durable awaitables fail
with an error naming ctx.wait. Real SQLite files, real apps; every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from durable import events as ev
from durable import replay
from sdk import App, Context, RetryPolicy, RunFailed

pytestmark = pytest.mark.asyncio

GATES = ("one", "two", "ok", "bad", "slow")


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05, park_after=0.0)


def build(app: App, gates: dict[str, asyncio.Event]) -> None:
    """The racer workflow: `race` names what it races (see RACES). It records the path it took
    (the labels done, in the order ctx.wait gives them, and the labels pending), then waits for
    the signal "finish" so that a test can close the app after the select and reopen it."""

    @app.step(retry=RetryPolicy(max_attempts=1))
    async def gated(name: str) -> str:
        await gates[name].wait()
        if name == "bad":
            raise ValueError("bad")
        return name

    @app.workflow()
    async def kid(ctx: Context) -> str:
        await ctx.wait_for_signal("never")
        return "child"

    @app.workflow()
    async def racer(ctx: Context, race: str) -> dict[str, Any]:
        def sig(name: str) -> asyncio.Future[Any]:
            return asyncio.ensure_future(ctx.wait_for_signal(name))

        def step(name: str) -> asyncio.Future[Any]:
            return asyncio.ensure_future(gated(name))

        return_when = asyncio.FIRST_COMPLETED
        timeout: float | None = None
        if race == "signal-signal":
            aws = {"a": sig("a"), "b": sig("b")}
        elif race == "step-signal":
            aws = {"step": step("one"), "signal": sig("go")}
        elif race == "child-signal":
            aws = {"child": asyncio.ensure_future(ctx.run_child(kid)), "signal": sig("go")}
        elif race == "timer-signal":
            aws = {"timer": asyncio.ensure_future(ctx.sleep(60)), "signal": sig("go")}
        elif race == "step-step":
            aws = {"one": step("one"), "two": step("two")}
        elif race == "first-exception":
            aws = {"ok": step("ok"), "bad": step("bad"), "slow": step("slow")}
            return_when = asyncio.FIRST_EXCEPTION
        elif race == "all-completed":
            aws = {"step": step("one"), "timer": asyncio.ensure_future(ctx.sleep(0.8))}
            aws["signal"] = sig("go")
            return_when = asyncio.ALL_COMPLETED
        else:
            assert race == "timeout"
            aws = {"signal": sig("never")}
            timeout = 1.5
        label = {id(fut): name for name, fut in aws.items()}
        done, pending = await ctx.wait(list(aws.values()), return_when=return_when, timeout=timeout)
        path: dict[str, Any] = {
            "done": [label[id(f)] + ("!" if f.exception() else "") for f in done],
            "pending": sorted(label[id(f)] for f in pending),
        }
        await ctx.wait_for_signal("finish")
        for fut in pending:
            fut.cancel()
        return path


# race -> (what the test does before the select ends, what it does after, the expected path).
# Actions: ("signal", name), ("gate", name), ("sleep", seconds). The actions after the select
# make the losers complete too, so that a replay sees them all done at once: only the recorded
# outcome can give the live path back.
Action = tuple[str, Any]
RACES: dict[str, tuple[list[Action], list[Action], dict[str, Any]]] = {
    "signal-signal": (
        [("signal", "b")],
        [("signal", "a")],
        {"done": ["b"], "pending": ["a"]},
    ),
    "step-signal": (
        [("signal", "go")],
        [("gate", "one")],
        {"done": ["signal"], "pending": ["step"]},
    ),
    "child-signal": ([("signal", "go")], [], {"done": ["signal"], "pending": ["child"]}),
    "timer-signal": ([("signal", "go")], [], {"done": ["signal"], "pending": ["timer"]}),
    "step-step": (
        [("gate", "two")],
        [("gate", "one")],
        {"done": ["two"], "pending": ["one"]},
    ),
    "first-exception": (
        [("gate", "ok"), ("sleep", 0.3), ("gate", "bad")],
        [("gate", "slow")],
        {"done": ["ok", "bad!"], "pending": ["slow"]},
    ),
    "all-completed": (
        [("gate", "one"), ("sleep", 1.0), ("signal", "go")],
        [],
        {"done": ["step", "timer", "signal"], "pending": []},
    ),
    "timeout": ([], [("signal", "never")], {"done": [], "pending": ["signal"]}),
}


async def until(app: App, run_id: str, check: Callable[[list[Any]], bool], what: str) -> None:
    for _ in range(400):
        if check(await app.events(run_id)):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{run_id}: never saw {what}")


def selects(events: list[Any]) -> list[Any]:
    return [e.event for e in events if isinstance(e.event, ev.SelectCompleted)]


async def act(app: App, gates: dict[str, asyncio.Event], actions: list[Action]) -> None:
    for kind, arg in actions:
        if kind == "signal":
            await app.signal("r1", arg, None)
        elif kind == "gate":
            gates[arg].set()
        else:
            await asyncio.sleep(arg)


async def run_race(tmp_path: Path, race: str, *, reopen: bool) -> tuple[Any, list[Any], App]:
    before, after, _expected = RACES[race]
    gates = {name: asyncio.Event() for name in GATES}
    app = make_app(tmp_path)
    build(app, gates)
    async with app:
        handle = await app.start("racer", race, run_id="r1")
        await until(app, "r1", lambda evs: any(e.type == "SelectStarted" for e in evs), "select")
        await asyncio.sleep(0.2)
        await act(app, gates, before)
        await until(app, "r1", lambda evs: bool(selects(evs)), "the select's outcome")
        await act(app, gates, after)
        await asyncio.sleep(0.3)  # the losers' outcomes are recorded too
        if not reopen:
            await app.signal("r1", "finish", None)
            return await handle.result(10), await app.events("r1"), app
    # Reopened: every gate open, so a step that runs again finishes at once.
    gates2 = {name: asyncio.Event() for name in GATES}
    for gate in gates2.values():
        gate.set()
    app2 = make_app(tmp_path)
    build(app2, gates2)
    async with app2:
        await app2.signal("r1", "finish", None)
        return await app2.handle("r1").result(10), await app2.events("r1"), app2


@pytest.mark.parametrize("race", list(RACES))
@pytest.mark.parametrize("reopen", [False, True], ids=["live", "reopened"])
async def test_a_race_takes_the_same_path_live_on_replay_and_after_reopening(
    tmp_path: Path, race: str, reopen: bool
) -> None:
    result, events, app = await run_race(tmp_path, race, reopen=reopen)
    expected = RACES[race][2]
    assert result == expected
    outcome = selects(events)
    assert len(outcome) == 1
    # The replay of the final log gives the same path (the recorded outcome is used even
    # though every raced awaitable is recorded done by then).
    report = await replay("r1", events, app.registry)
    assert report.deterministic, report.divergence
    assert report.status == "succeeded"


async def test_the_recorded_outcome_wins_over_the_order_a_replay_would_see(
    tmp_path: Path,
) -> None:
    """The signal arrives first live; the step finishes later. Replayed, both are recorded
    and would complete together: the select still says only the signal was done."""
    result, events, _app = await run_race(tmp_path, "step-signal", reopen=True)
    assert result == {"done": ["signal"], "pending": ["step"]}
    started = next(e.event for e in events if isinstance(e.event, ev.SelectStarted))
    completed = selects(events)[0]
    assert (started.count, started.return_when) == (2, "FIRST_COMPLETED")
    assert completed.pos == started.pos and completed.done == [1] and not completed.timed_out
    step_done = next(e.seq for e in events if isinstance(e.event, ev.StepCompleted))
    select_done = next(e.seq for e in events if isinstance(e.event, ev.SelectCompleted))
    assert select_done < step_done


async def test_all_completed_records_the_order_of_completion(tmp_path: Path) -> None:
    _result, events, _app = await run_race(tmp_path, "all-completed", reopen=False)
    assert selects(events)[0].done == [0, 1, 2]


async def test_a_select_timeout_is_durable_across_a_restart(tmp_path: Path) -> None:
    """The timeout's deadline is recorded: reopened, the run does not wait the whole timeout
    again, and the select ends (timed out) at the recorded deadline, never before."""
    gates = {name: asyncio.Event() for name in GATES}
    app = make_app(tmp_path)
    build(app, gates)
    async with app:
        await app.start("racer", "timeout", run_id="r1")
        await until(app, "r1", lambda evs: any(e.type == "SelectStarted" for e in evs), "select")
    await asyncio.sleep(0.5)
    reopened = time.time()
    app2 = make_app(tmp_path)
    build(app2, gates)
    async with app2:
        await until(app2, "r1", lambda evs: bool(selects(evs)), "the select's timeout")
        await app2.signal("r1", "finish", None)
        assert await app2.handle("r1").result(10) == {"done": [], "pending": ["signal"]}
        events = await app2.events("r1")
    started = next(e.event for e in events if isinstance(e.event, ev.SelectStarted))
    ended = next(e for e in events if isinstance(e.event, ev.SelectCompleted))
    assert started.deadline is not None
    assert ended.at >= started.deadline  # never early
    assert isinstance(ended.event, ev.SelectCompleted) and ended.event.timed_out
    assert ended.at - started.deadline < 0.5
    assert ended.at < reopened + 1.5  # a timeout restarted at the reopening would end later


async def test_as_completed_yields_in_recorded_order(tmp_path: Path) -> None:
    gates = {name: asyncio.Event() for name in GATES}

    def define(app: App) -> None:
        @app.step()
        async def gated(name: str) -> str:
            await gates[name].wait()
            return name

        @app.workflow()
        async def collect(ctx: Context) -> list[Any]:
            got: list[Any] = []
            aws = [gated("one"), ctx.wait_for_signal("go"), gated("two")]
            async for fut in ctx.as_completed(aws):
                got.append(fut.result())
                if len(got) == 1:
                    # The sync form too, over what is left to race: an iterator of awaitables.
                    rest = [ctx.sleep(0.2), gated("slow")]
                    for aw in ctx.as_completed(rest):
                        got.append(await aw)
            await ctx.wait_for_signal("finish")
            return got

    app = make_app(tmp_path)
    define(app)
    async with app:
        await app.start("collect", run_id="r1")
        await asyncio.sleep(0.3)
        gates["two"].set()
        await asyncio.sleep(0.6)  # the timer of the inner as_completed fires meanwhile
        gates["slow"].set()
        await asyncio.sleep(0.3)
        await app.signal("r1", "go", "signal")
        await asyncio.sleep(0.3)
        gates["one"].set()
        await asyncio.sleep(0.3)
    for gate in gates.values():
        gate.set()
    app2 = make_app(tmp_path)
    define(app2)
    async with app2:
        await app2.signal("r1", "finish", None)
        result = await app2.handle("r1").result(10)
        events = await app2.events("r1")
    assert result == ["two", None, "slow", "signal", "one"]
    report = await replay("r1", events, app2.registry)
    assert report.deterministic, report.divergence


async def test_pending_goes_back_into_ctx_wait_but_a_plain_set_is_refused(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def drain(ctx: Context) -> list[Any]:
        naps: dict[Any, float] = {asyncio.ensure_future(ctx.sleep(s)): s for s in (0.3, 0.1, 0.2)}
        try:
            await ctx.wait(set(naps))
        except TypeError as exc:
            got: list[Any] = [str(exc)]
        pending: Any = list(naps)
        while pending:
            done, pending = await ctx.wait(pending)
            got += [naps[f] for f in done]
        return got

    async with app:
        result = await app.run(drain, run_id="r1", timeout=10)
        events = await app.events("r1")
    assert "pass a list or a tuple, not a set" in result[0]
    assert result[1:] == [0.1, 0.2, 0.3]
    report = await replay("r1", events, app.registry)
    assert report.deterministic, report.divergence


async def test_a_select_of_another_size_on_replay_is_a_divergence(tmp_path: Path) -> None:
    def define(app: App, extra: bool) -> None:
        @app.workflow(name="picky")
        async def picky(ctx: Context) -> int:
            aws = [asyncio.ensure_future(ctx.sleep(s)) for s in (0.05, 30)]
            if extra:  # the same positions, one more (not durable) awaitable raced
                aws.append(asyncio.ensure_future(asyncio.sleep(10)))
            done, pending = await ctx.wait(aws)
            for fut in pending:
                fut.cancel()
            return len(done)

    app = make_app(tmp_path)
    define(app, False)
    async with app:
        assert await app.run("picky", run_id="r1", timeout=10) == 1
        events = await app.events("r1")
    changed = make_app(tmp_path)
    define(changed, True)
    report = await replay("r1", events, changed.registry)
    assert not report.deterministic
    div = report.divergence
    assert div is not None and div.position == 2
    assert "2 awaitables" in div.recorded and "3 awaitables" in div.requested
    assert div.where.startswith(f"{__file__}:")


# -- raw asyncio races over durable awaitables -------------------------------------------------


@pytest.mark.parametrize("how", ["wait", "wait-later", "as_completed", "wait_for"])
async def test_raw_asyncio_races_over_durable_awaitables_fail_clearly(
    tmp_path: Path, how: str
) -> None:
    """Refused when the raced command starts (the usual order: wrap, then asyncio.wait) or,
    for "wait-later" (the tasks already blocked in their waits), when it ends."""
    app = make_app(tmp_path)

    @app.step()
    async def quick() -> str:
        return "quick"

    @app.workflow()
    async def raw(ctx: Context) -> str:
        if how == "wait":
            a = asyncio.ensure_future(ctx.wait_for_signal("a"))
            b = asyncio.ensure_future(quick())
            await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        elif how == "wait-later":
            signal = asyncio.ensure_future(ctx.wait_for_signal("a"))
            nap = asyncio.ensure_future(ctx.sleep(0.3))
            await ctx.sleep(0.05)  # both are waiting by now
            await asyncio.wait([signal, nap], return_when=asyncio.FIRST_COMPLETED)
        elif how == "as_completed":
            for aw in asyncio.as_completed([quick(), ctx.sleep(0.05)]):
                await aw
        else:
            await asyncio.wait_for(ctx.wait_for_signal("a"), 0.2)
        return "diverged silently"

    async with app:
        handle = await app.start(raw, run_id="r1")
        helper = how.removesuffix("-later")
        with pytest.raises(RunFailed, match=rf"asyncio\.{helper}\(\).*ctx\.wait\(") as caught:
            await handle.result(10)
        info = await app.get_run("r1")
    assert info.status == "failed"
    assert info.error is not None and info.error.type == "durable.UnrecordedRaceError"
    assert "ctx.as_completed(" in str(caught.value)


async def test_raw_asyncio_wait_for_all_without_a_timeout_races_nothing(tmp_path: Path) -> None:
    """asyncio.wait(ALL_COMPLETED) with no timeout waits for every awaitable: nothing depends
    on which finished first, so it is allowed (and replays cleanly)."""
    app = make_app(tmp_path)

    @app.step()
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    @app.workflow()
    async def all_of(ctx: Context) -> list[float]:
        tasks = [asyncio.ensure_future(nap(s)) for s in (0.1, 0.0)]
        _done, pending = await asyncio.wait(tasks)
        assert not pending
        return [t.result() for t in tasks]

    async with app:
        assert await app.run(all_of, run_id="r1", timeout=10) == [0.1, 0.0]
        events = await app.events("r1")
    report = await replay("r1", events, app.registry)
    assert report.deterministic, report.divergence


async def test_a_log_recorded_with_a_raw_race_does_not_replay_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run recorded before the refusal existed (here: with it switched off) replays with
    a divergence naming the raw helper, instead of silently taking another path."""
    import durable.runtime._select

    app = make_app(tmp_path)

    @app.workflow()
    async def old(ctx: Context) -> int:
        a = asyncio.ensure_future(ctx.sleep(0.05))
        b = asyncio.ensure_future(ctx.sleep(0.3))
        done, _pending = await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
        await b
        return len(done)

    with monkeypatch.context() as patch:
        patch.setattr(durable.runtime._select, "_raw_racer", lambda ex: None)
        async with app:
            # 1 live; a re-execution after the run was parked replays both timers' recorded
            # ends and may see both done: the very unreliability the refusal prevents.
            assert await app.run(old, run_id="r1", timeout=10) in (1, 2)
            events = await app.events("r1")
    report = await replay("r1", events, app.registry)
    assert not report.deterministic
    assert report.divergence is not None
    assert report.divergence.requested.startswith("asyncio.wait() over position")


async def test_gather_of_durable_awaitables_still_works(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step()
    async def double(n: int) -> int:
        return 2 * n

    @app.workflow()
    async def fan(ctx: Context) -> list[Any]:
        return list(await asyncio.gather(double(1), ctx.sleep(0.05), double(3)))

    async with app:
        assert await app.run(fan, run_id="r1", timeout=10) == [2, None, 6]


async def test_cancelling_the_run_during_a_select_ends_it_cancelled(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    undone: list[str] = []

    @app.step()
    async def undo() -> None:
        undone.append("undo")

    @app.workflow()
    async def waiting(ctx: Context) -> str:
        aws = [ctx.wait_for_signal("a"), ctx.sleep(60)]
        try:
            await ctx.wait(aws)
        except asyncio.CancelledError:
            await undo()
            raise
        return "raced"

    async with app:
        handle = await app.start(waiting, run_id="r1")
        await until(app, "r1", lambda evs: any(e.type == "SelectStarted" for e in evs), "select")
        await asyncio.sleep(0.2)
        await app.cancel("r1", "stop")
        with pytest.raises(Exception, match="cancelled"):
            await handle.result(10)
        info = await app.get_run("r1")
        events = await app.events("r1")
    assert info.status == "cancelled" and undone == ["undo"]
    cancelled = [e.event for e in events if isinstance(e.event, ev.CommandCancelled)]
    assert 2 in [c.pos for c in cancelled]  # the select's position
    # (durable.replay of a cancelled run raises CancelledError today, select or not.)
