"""The child lifecycle (issue 14 §4), on real SQLite files: a parent's end (failed, timed out,
cancelled, succeeded) cancels its unfinished children unless they were started with
parent_close="abandon"; a child's own timeout; a cancelled run resumed by `retry`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from durable import ChildRunFailed, RepairError, RunCancelled, RunFailed, replay
from durable import events as ev
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path, **kw: Any) -> App:
    kw.setdefault("poll_interval", 0.05)
    return App(f"sqlite:///{tmp_path / 'runs.db'}", **kw)


async def status_of(app: App, run_id: str, want: str, seconds: float = 10) -> str:
    """The run's status once it is `want`, or whatever it is after `seconds`."""
    status = ""
    for _ in range(int(seconds / 0.05)):
        try:
            status = (await app.get_run(run_id)).status
        except LookupError:  # not created yet
            status = "absent"
        if status == want:
            break
        await asyncio.sleep(0.05)
    return status


def add_waiter(app: App) -> None:
    """A child that waits for a signal nobody sends (unless the test does)."""

    @app.workflow(name="waiter")
    async def waiter(ctx: Context) -> Any:
        return await ctx.wait_for_signal("go")


async def test_a_parent_deadline_cancels_its_children(tmp_path: Path) -> None:
    # The reproduction from the issue: a parent's deadline reached none of its children.
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> Any:
        return await ctx.run_child("waiter", run_id="kid")

    async with app:
        handle = await app.start(parent, run_id="p", timeout=0.5)
        with pytest.raises(RunFailed, match="RunTimedOut"):
            await handle.result(20)
        assert await status_of(app, "kid", "cancelled") == "cancelled"
        kid_events = await app.events("kid")
    requested = [e.event for e in kid_events if isinstance(e.event, ev.CancelRequested)]
    assert requested and "parent run 'p' ended failed" in requested[0].reason


async def test_a_failed_parent_cancels_its_unfinished_children(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> None:
        await ctx.start_child("waiter", run_id="kid")
        raise ValueError("boom")

    async with app:
        handle = await app.start(parent, run_id="p")
        with pytest.raises(RunFailed, match="boom"):
            await handle.result(20)
        assert await status_of(app, "kid", "cancelled") == "cancelled"


async def test_cancelling_a_parent_cancels_child_and_grandchild(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def middle(ctx: Context) -> Any:
        return await ctx.run_child("waiter", run_id="grandkid")

    @app.workflow()
    async def top(ctx: Context) -> Any:
        return await ctx.run_child(middle, run_id="kid")

    async with app:
        handle = await app.start(top, run_id="p")
        assert await status_of(app, "grandkid", "running") == "running"
        await app.cancel("p", "enough")
        with pytest.raises(RunCancelled):
            await handle.result(20)
        assert await status_of(app, "kid", "cancelled") == "cancelled"
        assert await status_of(app, "grandkid", "cancelled") == "cancelled"
        kid_events = await app.events("kid")
    # Asked once: with the parent's CancelRequested, not again with its end.
    requested = [e.event for e in kid_events if isinstance(e.event, ev.CancelRequested)]
    assert [r.reason for r in requested] == ["enough"]


async def test_an_abandoned_child_outlives_its_parent(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> None:
        await ctx.start_child("waiter", run_id="free", parent_close="abandon")
        await ctx.start_child("waiter", run_id="bound")
        raise ValueError("boom")

    @app.workflow()
    async def cancelled_parent(ctx: Context) -> Any:
        return await ctx.run_child("waiter", run_id="free2", parent_close="abandon")

    async with app:
        with pytest.raises(RunFailed, match="boom"):
            await (await app.start(parent, run_id="p")).result(20)
        assert await status_of(app, "bound", "cancelled") == "cancelled"
        handle = await app.start(cancelled_parent, run_id="p2")
        assert await status_of(app, "free2", "running") == "running"
        await app.cancel("p2")
        with pytest.raises(RunCancelled):
            await handle.result(20)
        await asyncio.sleep(0.3)
        assert (await app.get_run("free")).status == "running"
        assert (await app.get_run("free2")).status == "running"
        await app.signal("free", "go", 1)
        await app.signal("free2", "go", 2)
        assert await app.handle("free").result(20) == 1
        assert await app.handle("free2").result(20) == 2


async def test_a_parent_that_succeeds_cancels_the_children_it_left_running(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> str:
        await ctx.start_child("waiter", run_id="kid")
        await ctx.start_child("waiter", run_id="free", parent_close="abandon")
        return "done"

    async with app:
        assert await (await app.start(parent, run_id="p")).result(20) == "done"
        assert await status_of(app, "kid", "cancelled") == "cancelled"
        assert (await app.get_run("free")).status == "running"


async def test_parent_close_is_checked(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> None:
        await ctx.start_child("waiter", parent_close="terminate")  # type: ignore[arg-type]

    async with app:
        with pytest.raises(RunFailed, match="parent_close must be 'cancel' or 'abandon'"):
            await (await app.start(parent)).result(20)


async def test_a_child_timeout_fails_the_child_and_the_parent_sees_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> str:
        try:
            await ctx.run_child("waiter", run_id="kid", timeout=0.3)
        except ChildRunFailed as exc:
            return f"{exc.status}: {exc.error.type if exc.error is not None else None}"
        return "no timeout"

    @app.workflow()
    async def bad(ctx: Context) -> None:
        await ctx.run_child("waiter", timeout=-1)

    async with app:
        assert await (await app.start(parent, run_id="p")).result(20) == (
            "failed: durable.RunTimedOut"
        )
        kid = await app.get_run("kid")
        with pytest.raises(RunFailed, match="timeout"):
            await (await app.start(bad)).result(20)
    assert kid.status == "failed"
    assert kid.error is not None and kid.error.type == "durable.RunTimedOut"


async def test_a_crash_right_after_the_parent_ends_still_cancels_the_child(
    tmp_path: Path,
) -> None:
    def build(poll: float) -> App:
        app = make_app(tmp_path, poll_interval=poll, park_after=0.05)
        add_waiter(app)

        @app.step()
        async def pause() -> None:
            await asyncio.sleep(0.3)  # the child is parked meanwhile

        @app.workflow(name="parent")
        async def parent(ctx: Context) -> None:
            await ctx.start_child("waiter", run_id="kid")
            await pause()
            raise ValueError("boom")

        return app

    # The first process's worker polls too rarely to act on the cancel before it "crashes"
    # (closes) right after the parent ended: only what the store holds survives.
    first = build(poll=60)
    async with first:
        handle = await first.start("parent", run_id="p")
        with pytest.raises(RunFailed, match="boom"):
            await handle.result(20)
        assert (await first.get_run("kid")).status == "running"
    second = build(poll=0.05)
    async with second:
        assert await status_of(second, "kid", "cancelled") == "cancelled"


async def test_a_cancelled_run_resumes_without_redoing_its_completed_steps(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []

    @app.step()
    async def work(label: str) -> str:
        calls.append(label)
        return label.upper()

    @app.workflow()
    async def flow(ctx: Context) -> str:
        first = await work("a")
        go = await ctx.wait_for_signal("go")
        return first + await work(str(go))

    async with app:
        handle = await app.start(flow, run_id="r")
        assert await status_of(app, "r", "running") == "running"
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.05)
        await app.cancel("r", "oops")
        with pytest.raises(RunCancelled):
            await handle.result(20)
        resumed = await app.retry("r")
        await asyncio.sleep(0.3)
        assert (await app.get_run("r")).status in ("pending", "running")  # not re-cancelled
        await app.signal("r", "go", "b")
        assert await resumed.result(20) == "AB"
        events = await app.events("r")
        assert (await replay("r", events, app.registry)).deterministic
    assert calls == ["a", "b"]
    assert [e.type for e in events].count("RunResumed") == 1


async def test_a_cancelled_run_cancelled_mid_step_resumes_and_can_be_cancelled_again(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []
    slow = {"seconds": 30.0}
    started = asyncio.Event()

    @app.step()
    async def quick(label: str) -> str:
        calls.append(label)
        return label

    @app.step()
    async def nap() -> str:
        calls.append("nap")
        started.set()
        await asyncio.sleep(slow["seconds"])
        return "rested"

    @app.workflow()
    async def flow(ctx: Context) -> str:
        return await quick("a") + await nap()

    async with app:
        handle = await app.start(flow, run_id="r")
        await asyncio.wait_for(started.wait(), 10)
        await app.cancel("r")
        with pytest.raises(RunCancelled):
            await handle.result(20)
        started.clear()
        again = await app.retry("r")
        await asyncio.wait_for(started.wait(), 10)
        await app.cancel("r", "second time")
        with pytest.raises(RunCancelled):
            await again.result(20)
        slow["seconds"] = 0.01
        assert await (await app.retry("r")).result(20) == "arested"
        events = await app.events("r")
    assert calls == ["a", "nap", "nap", "nap"]
    cancels = [e.event.reason for e in events if isinstance(e.event, ev.CancelRequested)]
    assert cancels == ["", "second time"]


async def test_retrying_a_cancelled_parent_resumes_its_cancelled_child(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    add_waiter(app)
    calls: list[str] = []

    @app.step()
    async def work(label: str) -> str:
        calls.append(label)
        return label

    @app.workflow()
    async def parent(ctx: Context) -> str:
        before = await work("before")
        got = await ctx.run_child("waiter", run_id="kid")
        return f"{before}+{got}"

    async with app:
        handle = await app.start(parent, run_id="p")
        assert await status_of(app, "kid", "running") == "running"
        await app.cancel("p")
        with pytest.raises(RunCancelled):
            await handle.result(20)
        assert await status_of(app, "kid", "cancelled") == "cancelled"
        resumed = await app.retry("p")
        assert (await app.get_run("kid")).status in ("pending", "running")
        await asyncio.sleep(0.3)
        assert (await app.get_run("kid")).status in ("pending", "running")  # not re-cancelled
        await app.signal("kid", "go", "kid")
        assert await resumed.result(20) == "before+kid"
        assert (await app.get_run("kid")).status == "succeeded"
        for run_id in ("p", "kid"):
            report = await replay(run_id, await app.events(run_id), app.registry)
            assert report.deterministic, run_id
    assert calls == ["before"]


async def test_a_run_that_handled_its_cancellation_is_not_resumed(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step()
    async def undo() -> None:
        return None

    @app.workflow()
    async def saga(ctx: Context) -> Any:
        try:
            return await ctx.wait_for_signal("go")
        except asyncio.CancelledError:
            await undo()  # compensation: the code went on after the cancellation
            raise

    async with app:
        handle = await app.start(saga, run_id="s")
        assert await status_of(app, "s", "running") == "running"
        await app.cancel("s")
        with pytest.raises(RunCancelled):
            await handle.result(20)
        with pytest.raises(RepairError, match=r"handled its cancellation.*fork it"):
            await app.retry("s")


async def test_a_timed_out_parent_resumes_with_the_child_its_deadline_cancelled(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> Any:
        return await ctx.run_child("waiter", run_id="kid")

    async with app:
        handle = await app.start(parent, run_id="p", timeout=0.5)
        with pytest.raises(RunFailed, match="RunTimedOut"):
            await handle.result(20)
        assert await status_of(app, "kid", "cancelled") == "cancelled"
        resumed = await app.retry("p", timeout=20)
        await app.signal("kid", "go", "late")
        assert await resumed.result(20) == "late"
        assert (await app.get_run("kid")).status == "succeeded"
        for run_id in ("p", "kid"):
            report = await replay(run_id, await app.events(run_id), app.registry)
            assert report.deterministic, run_id
        events = await app.events("p")
    plan = next(e.event for e in events if isinstance(e.event, ev.RunResumed))
    assert plan.reopen == [0] and plan.children == ["kid"]


async def test_a_child_created_while_its_parent_times_out_is_recorded_and_cancelled(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    add_waiter(app)

    @app.workflow()
    async def parent(ctx: Context) -> Any:
        return await ctx.run_child("waiter", run_id="kid")

    async with app:
        worker = app.engine.worker
        assert worker is not None and worker.start_child_run is not None
        create = worker.start_child_run

        async def slow_create(*args: Any) -> tuple[str, str, str]:
            await asyncio.sleep(0.5)  # the parent's deadline passes meanwhile
            return await create(*args)

        worker.start_child_run = slow_create
        handle = await app.start(parent, run_id="p", timeout=0.2)
        with pytest.raises(RunFailed, match="RunTimedOut"):
            await handle.result(20)
        assert await status_of(app, "kid", "cancelled") == "cancelled"
        events = await app.events("p")
    assert [e.type for e in events][1:] == ["ChildStarted", "RunFailed"]


async def test_a_cancelled_dag_run_resumes_without_redoing_its_completed_steps(
    tmp_path: Path,
) -> None:
    from durable.dag import parse_definition

    app = make_app(tmp_path)
    counter, flag, started = tmp_path / "zero.txt", tmp_path / "slow", tmp_path / "started"
    flag.write_text("yes")
    definition = parse_definition(
        f"""
name: slowdag
tasks:
  zero: {{script: "echo ran >> {counter}"}}
  first: {{script: "touch {started}; if [ -e {flag} ]; then exec sleep 30; fi; echo ok",
           depends_on: [zero]}}
  second: {{script: "echo done", depends_on: [first]}}
""",
        str(tmp_path / "slowdag.yaml"),
    )
    async with app:
        name = app.register_dag(definition)
        handle = await app.start(name, run_id="d")
        for _ in range(200):
            if started.exists():
                break
            await asyncio.sleep(0.05)
        await app.cancel("d", "enough")
        assert await status_of(app, "d", "cancelled") == "cancelled"
        flag.unlink()  # the fix
        started.unlink()
        await app.retry(handle.run_id)
        assert await status_of(app, "d", "succeeded") == "succeeded"
        result = await app.dag_result("d")
    assert counter.read_text().splitlines() == ["ran"]  # zero did not run again
    assert result.steps["second"].status == "succeeded"
