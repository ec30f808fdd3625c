"""`retry`: a failed run resumes in place from the failure it ended on, on real SQLite files.
Steps it completed are not run again; the failed step gets new attempts; the log keeps the
first failure and replays deterministically afterwards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from durable import RepairError, RetryPolicy, RunFailed, replay
from durable import events as ev
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)


class Flaky:
    """Counts calls per label; fails while `broken` holds the label."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.broken: set[str] = set()

    def __call__(self, label: str) -> str:
        self.calls.append(label)
        if label in self.broken:
            raise ValueError(f"{label} is broken")
        return label.upper()


async def deterministic(app: App, run_id: str) -> bool:
    report = await replay(run_id, await app.events(run_id), app.registry)
    return report.deterministic


async def test_a_failed_step_is_retried_in_place_and_completed_steps_are_not(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    flaky = Flaky()
    flaky.broken.add("b")

    @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    async def work(label: str) -> str:
        return flaky(label)

    @app.workflow()
    async def pipeline(ctx: Context) -> list[str]:
        return [await work("a"), await work("b"), await work("c")]

    async with app:
        handle = await app.start(pipeline, run_id="r")
        with pytest.raises(RunFailed, match="b is broken"):
            await handle.result(20)
        assert flaky.calls == ["a", "b", "b"]
        flaky.broken.clear()  # the fix
        again = await app.retry("r")
        assert again.run_id == "r"
        assert await again.result(20) == ["A", "B", "C"]
        events = await app.events("r")
        info = await app.get_run("r")
        assert await deterministic(app, "r")
        with pytest.raises(RepairError, match="only a failed or cancelled run can be retried"):
            await app.retry("r")
    assert flaky.calls == ["a", "b", "b", "b", "c"]  # a not again; b got a third attempt
    kinds = [e.type for e in events]
    assert kinds.count("RunFailed") == 1 and kinds[-1] == "RunCompleted"
    resumed = next(e.event for e in events if isinstance(e.event, ev.RunResumed))
    assert resumed.retry == [1]
    b_starts = [e.event.attempt for e in events if isinstance(e.event, ev.StepStarted)]
    assert b_starts == [1, 1, 2, 3, 1]  # a, b#1, b#2, b#3 (after the retry), c
    assert info.status == "succeeded" and len(info.retries) == 1
    assert info.steps[1].attempts == 3


async def test_a_retry_gives_the_step_a_fresh_retry_budget(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    flaky = Flaky()
    flaky.broken.add("x")

    @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    def work(label: str) -> str:
        return flaky(label)

    @app.workflow()
    async def one(ctx: Context) -> str:
        return await work("x")

    async with app:
        handle = await app.start(one, run_id="r")
        with pytest.raises(RunFailed):
            await handle.result(20)
        # Still broken: the retry runs the policy's two attempts again, then fails again.
        with pytest.raises(RunFailed):
            await (await app.retry("r")).result(20)
        flaky.broken.clear()
        assert await (await app.retry("r")).result(20) == "X"
        info = await app.get_run("r")
    assert flaky.calls == ["x"] * 5
    assert len(info.retries) == 2 and info.steps[0].attempts == 5


async def test_only_the_failure_the_run_ended_on_is_retried(tmp_path: Path) -> None:
    """A failure the workflow caught and went on from is history: retrying it would change
    the path the code took. Only the later, unhandled failure gets a new attempt."""
    app = make_app(tmp_path)
    flaky = Flaky()
    flaky.broken.update({"optional", "required"})

    @app.step(retry=RetryPolicy(max_attempts=1))
    async def work(label: str) -> str:
        return flaky(label)

    @app.workflow()
    async def tolerant(ctx: Context) -> str:
        try:
            first = await work("optional")
        except Exception:
            first = "skipped"
        return first + "/" + await work("required")

    async with app:
        handle = await app.start(tolerant, run_id="r")
        with pytest.raises(RunFailed):
            await handle.result(20)
        flaky.broken.clear()
        assert await (await app.retry("r")).result(20) == "skipped/REQUIRED"
        assert await deterministic(app, "r")
    assert flaky.calls == ["optional", "required", "required"]


async def test_a_run_whose_code_raised_runs_on_with_the_fixed_code(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    flaky = Flaky()
    bug = {"on": True}

    @app.step()
    async def work(label: str) -> str:
        return flaky(label)

    @app.workflow()
    async def buggy(ctx: Context) -> str:
        first = await work("a")
        if bug["on"]:
            raise KeyError("the bug")
        return first + await work("b")

    async with app:
        handle = await app.start(buggy, run_id="r")
        with pytest.raises(RunFailed, match="the bug"):
            await handle.result(20)
        bug["on"] = False  # the deployed fix
        assert await (await app.retry("r")).result(20) == "AB"
        events = await app.events("r")
    resumed = next(e.event for e in events if isinstance(e.event, ev.RunResumed))
    assert resumed.retry == [] and flaky.calls == ["a", "b"]


async def test_a_timed_out_run_is_retried_with_a_new_deadline(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    slow = {"seconds": 30.0}

    @app.step()
    async def nap() -> str:
        await asyncio.sleep(slow["seconds"])
        return "rested"

    @app.workflow()
    async def sleepy(ctx: Context) -> str:
        return await nap()

    async with app:
        handle = await app.start(sleepy, run_id="r", timeout=0.3)
        with pytest.raises(RunFailed, match="RunTimedOut"):
            await handle.result(20)
        slow["seconds"] = 0.05
        assert await (await app.retry("r", timeout=20)).result(20) == "rested"
        events = await app.events("r")
    resumed = next(e.event for e in events if isinstance(e.event, ev.RunResumed))
    assert resumed.retry == [0] and resumed.deadline is not None


async def test_retrying_a_parent_retries_the_failed_child_it_ended_on(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    flaky = Flaky()
    flaky.broken.add("inner")

    @app.step(retry=RetryPolicy(max_attempts=1))
    async def work(label: str) -> str:
        return flaky(label)

    @app.workflow()
    async def child(ctx: Context) -> str:
        return await work("inner")

    @app.workflow()
    async def parent(ctx: Context) -> str:
        before = await work("outer")
        inner: str = await ctx.run_child(child, run_id="kid")
        return before + "+" + inner

    async with app:
        handle = await app.start(parent, run_id="p")
        with pytest.raises(RunFailed, match="ChildRunFailed"):
            await handle.result(20)
        with pytest.raises(RepairError, match="retry the parent"):
            await app.retry("kid")
        flaky.broken.clear()
        assert await (await app.retry("p")).result(20) == "OUTER+INNER"
        kid = await app.get_run("kid")
        assert await deterministic(app, "p") and await deterministic(app, "kid")
        parent_events = await app.events("p")
    assert flaky.calls == ["outer", "inner", "inner"]
    assert kid.status == "succeeded" and len(kid.retries) == 1
    resumed = next(e.event for e in parent_events if isinstance(e.event, ev.RunResumed))
    assert resumed.children == ["kid"] and resumed.retry == []
    ends = [e.event.status for e in parent_events if isinstance(e.event, ev.ChildCompleted)]
    assert ends == ["failed", "succeeded"]


async def test_what_cannot_be_retried_says_why(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def waits(ctx: Context) -> Any:
        return await ctx.wait_for_signal("go")

    async with app:
        await app.start(waits, run_id="w")
        with pytest.raises(
            RepairError, match=r"'w' is (pending|running): only a failed or cancelled run"
        ):
            await app.retry("w")
        await app.signal("w", "go", 1)
        assert await app.handle("w").result(20) == 1
        with pytest.raises(RepairError, match="is succeeded: only a failed or cancelled run"):
            await app.retry("w")
        with pytest.raises(LookupError, match="nope"):
            await app.retry("nope")
