"""`fork`: a new run that reuses a finished run's recorded outcomes before a position and
executes from there, on real SQLite files: nothing before the position runs again, the fork
can run on another version, and a fork whose reused history the code would not replay is
refused before anything is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from durable import RepairError, RetryPolicy, RunFailed, replay
from durable import events as ev
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)


async def test_a_fork_reuses_the_results_before_the_step_and_reruns_the_rest(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []
    factor = {"v": 0}  # the bug: a zero factor

    @app.step()
    async def load(n: int) -> list[int]:
        calls.append("load")
        return list(range(n))

    @app.step()
    async def scale(xs: list[int]) -> list[int]:
        calls.append("scale")
        return [x * factor["v"] for x in xs]

    @app.step()
    async def total(xs: list[int]) -> int:
        calls.append("total")
        return sum(xs)

    @app.workflow(name="report")
    async def report(ctx: Context, n: int) -> dict[str, Any]:
        stamp = ctx.uuid4()
        xs = await load(n)
        ys = await scale(xs)
        return {"stamp": str(stamp), "sum": await total(ys)}

    async with app:
        source = await app.run(report, 4, run_id="src", timeout=20)
        assert source["sum"] == 0 and calls == ["load", "scale", "total"]
        factor["v"] = 10  # the fix
        fork = await app.fork("src", "scale", new_run_id="fix")
        result = await fork.result(20)
        info = await app.get_run("fix")
        events = await app.events("fix")
        report_ok = await replay("fix", events, app.registry)
        by_number = await (await app.fork("src", 3)).result(20)
    assert result == {"stamp": source["stamp"], "sum": 60}  # the uuid marker was reused
    assert calls == ["load", "scale", "total", "scale", "total", "total"]
    assert by_number["sum"] == 0  # fork from position 3: only `total` ran again, on old data
    assert info.forked_from == "src" and info.fork_point == "position 2 (scale)"
    assert info.input == 4 and report_ok.deterministic
    first = events[0].event
    assert isinstance(first, ev.RunStarted) and first.forked_from == "src"
    starts = [(e.event.pos, e.event.name) for e in events if isinstance(e.event, ev.StepStarted)]
    assert starts == [(1, "load"), (2, "scale"), (3, "total")]


async def test_a_fork_on_a_new_version_and_one_that_would_diverge(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []

    @app.step()
    async def fetch() -> int:
        calls.append("fetch")
        return 7

    @app.step()
    async def fetch_again() -> int:
        calls.append("fetch_again")
        return 8

    @app.step()
    async def double(x: int) -> int:
        calls.append("double")
        return 2 * x

    @app.step()
    async def triple(x: int) -> int:
        calls.append("triple")
        return 3 * x

    @app.workflow(name="calc", version="1")
    async def calc_v1(ctx: Context) -> int:
        return await double(await fetch())

    @app.workflow(name="calc", version="2")
    async def calc_v2(ctx: Context) -> int:
        return await triple(await fetch())

    @app.workflow(name="calc", version="3")
    async def calc_v3(ctx: Context) -> int:
        return await triple(await fetch_again())

    async with app:
        assert await (await app.start("calc", version="1", run_id="v1")).result(20) == 14
        forked = await app.fork("v1", 1, version="2")
        assert await forked.result(20) == 21
        info = await forked.info()
        with pytest.raises(RepairError, match=r"does not replay on calc@3.*fetch"):
            await app.fork("v1", 1, version="3", new_run_id="never")
        with pytest.raises(LookupError, match="never"):
            await app.get_run("never")
        with pytest.raises(RepairError, match="has no step 'nothing'"):
            await app.fork("v1", "nothing")
        with pytest.raises(RepairError, match=r"positions 0\.\.1: --from-step 5 is past them"):
            await app.fork("v1", 5)
    assert calls == ["fetch", "double", "triple"]  # the fork did not fetch again
    assert info.version == "2"


async def test_a_fork_gets_the_signals_the_source_received(tmp_path: Path) -> None:
    """Signals are the world's input: a wait the fork executes again receives them again, in
    order, without anyone sending them twice."""
    app = make_app(tmp_path)

    @app.step()
    async def note(x: Any) -> Any:
        return x

    @app.workflow(name="approvals")
    async def approvals(ctx: Context) -> list[Any]:
        first = await ctx.wait_for_signal("approve")
        kept = await note(first)
        second = await ctx.wait_for_signal("approve")
        return [kept, await note(second)]

    async with app:
        handle = await app.start("approvals", run_id="src")
        await app.signal("src", "approve", "alice")
        await app.signal("src", "approve", "bob")
        assert await handle.result(20) == ["alice", "bob"]
        whole = await (await app.fork("src", 0)).result(20)
        late = await (await app.fork("src", 2)).result(20)
    assert whole == ["alice", "bob"] and late == ["alice", "bob"]


async def test_what_cannot_be_forked_says_why(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step(retry=RetryPolicy(max_attempts=1))
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.workflow(name="gate")
    async def gate(ctx: Context) -> Any:
        return await ctx.wait_for_signal("go")

    @app.workflow(name="fails")
    async def fails(ctx: Context) -> None:
        await boom()

    async with app:
        await app.start("gate", run_id="open")
        with pytest.raises(RepairError, match=r"'open' is (pending|running): a fork starts"):
            await app.fork("open", 0)
        with pytest.raises(RunFailed):
            await (await app.start("fails", run_id="f")).result(20)
        with pytest.raises(LookupError):
            await app.fork("missing", 0)
        # A failed run can be forked from its failed step (re-executing it).
        with pytest.raises(RunFailed, match="boom"):
            await (await app.fork("f", 0)).result(20)
