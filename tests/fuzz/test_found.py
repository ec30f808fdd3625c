"""Engine bugs the workflow fuzzer found, each as the smallest test that shows it.

Each was marked xfail(strict=True) until the engine was fixed (a fix turns the test green,
pytest then reports XPASS as a failure, and the marker must go). All six are fixed; they stay
as regression tests, with what they found in their docstring. The fuzzer tolerates these (counts
them as "known bug: ...") unless FUZZ_STRICT=1.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from durable._replay import replay
from sdk import App, Context


def _app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'found.db'}", lease_ttl=1.0, poll_interval=0.05)


async def test_replay_of_a_run_cancelled_in_a_wait(tmp_path: Path) -> None:
    """Found by the fuzzer, fixed: replay() of a run that ended cancelled in a durable wait
    raises the recorded CancelledError instead of returning a report (`durable replay` of
    such a run crashes)"""
    app = _app(tmp_path)

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
    assert report.deterministic


async def test_no_event_after_the_end_of_a_run(tmp_path: Path) -> None:
    """Found by the fuzzer, fixed: a gather branch still running when the workflow ends (its
    sibling raised) records its command after the run's terminal event: ChildStarted follows
    RunFailed in the log"""
    app = _app(tmp_path)

    @app.workflow(name="child")
    async def child(ctx: Context) -> int:
        return 1

    async def boom() -> None:
        raise RuntimeError("boom")

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> None:
        await asyncio.gather(ctx.run_child(child, run_id="p.child"), boom())

    async with app:
        handle = await app.start(parent, run_id="p")
        with pytest.raises(Exception, match="boom"):
            await handle.result(timeout=10)
        await app.handle("p.child").result(timeout=10)
        await asyncio.sleep(0.2)  # anything late is durable by now
        types = [e.type for e in await app.events("p")]
    assert types[-1] == "RunFailed", types


async def test_cancel_while_a_gathered_child_starts(tmp_path: Path) -> None:
    """Found by the fuzzer, fixed: ctx.run_child() takes its position when its coroutine
    first runs, not at the call; a run parked while a gathered child is being created, then
    cancelled, re-executes with the cancel delivered before that task runs: the child's
    position goes to the compensation step, replay diverges (NonDeterminismError; a live re-
    execution too, ending the cancelled run failed) and the created child is never cancelled"""
    app = _app(tmp_path)

    @app.step()
    async def compensate() -> str:
        return "undone"

    @app.workflow(name="child")
    async def child(ctx: Context) -> str:
        return str(await ctx.wait_for_signal("never"))

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> None:
        try:
            await asyncio.gather(
                ctx.run_child(child, run_id="p.child"), ctx.wait_for_signal("hold")
            )
        except asyncio.CancelledError:
            await compensate()
            raise

    async with app:
        handle = await app.start(parent, run_id="p")
        for _ in range(2000):  # until the wait is recorded
            if any(e.type == "WaitStarted" for e in await app.events("p")):
                break
            await asyncio.sleep(0.001)
        await app.cancel("p")
        with pytest.raises(Exception, match="cancelled"):
            await handle.result(timeout=10)
        events = await app.events("p")
        report = await replay("p", events, app.registry)
        child_status = "missing"
        for _ in range(100):
            runs = {r.run_id: r.status for r in await app.list_runs()}
            child_status = runs.get("p.child", "missing")
            if child_status in ("missing", "cancelled"):
                break
            await asyncio.sleep(0.02)
    assert report.deterministic, report.divergence
    # Created, so cancelled with its parent (or never created at all).
    assert child_status in ("missing", "cancelled"), child_status


async def test_a_run_cancelled_before_it_is_picked_up_ends(tmp_path: Path) -> None:
    """Found by the fuzzer, fixed: a run cancelled before a worker executes it never ends:
    its first step awaits the durability barrier (RunLog.all_durable) unshielded, the
    cancellation delivered there cancels the store's write future, the RunLog takes that for
    a failed write and stops the execution; every later claim does the same (one more
    StepStarted each time)"""
    url = f"sqlite:///{tmp_path / 'found.db'}"

    def build(worker: bool) -> App:
        app = App(url, lease_ttl=1.0, poll_interval=0.05, worker=worker)

        @app.step()
        async def work() -> str:
            return "w"

        @app.workflow(name="wf")
        async def wf(ctx: Context) -> str:
            await work()
            return str(await ctx.wait_for_signal("never"))

        return app

    async with build(worker=False) as client:
        await client.start("wf", run_id="r")
        await client.cancel("r")
    async with build(worker=True) as app:
        try:
            status = "ended"
            await app.handle("r").result(timeout=5)
        except TimeoutError:
            status = await app.handle("r").status()
        except Exception:
            status = await app.handle("r").status()
    assert status == "cancelled", status


async def test_postgres_release_racing_a_signal_keeps_the_wake_up(pg_fresh_url: str) -> None:
    """Found by the fuzzer, fixed: PostgreSQL: a worker parking a run (release) while a
    signal is being delivered to it loses the wake-up: the release computes ready_at from an
    inbox read that does not see the delivery's uncommitted item (READ COMMITTED; the
    delivery's row lock is KEY SHARE, and its own wake-up UPDATE is skipped or overwritten):
    parked for good (or until the wait's timeout) with the signal in its inbox"""
    import asyncpg

    from storage import EventRecord, Fence, NewInboxItem, NewRun, Release, open_store
    from storage import _postgres_ops as ops

    base, _, schema = pg_fresh_url.partition("?schema=")
    store = open_store(pg_fresh_url)
    await store.open()
    conns = [await asyncpg.connect(base) for _ in range(2)]
    try:
        now = time.time()
        run = NewRun("r", "wf", "1", b"\xc0", now, owner="w1", lease_expires_at=now + 60)
        record, _ = await store.create_run(run, EventRecord("r", 1, "RunStarted", b"\x80", now))
        for conn in conns:
            await conn.execute(f"SET search_path TO {schema}")
        delivering = conns[0].transaction()
        await delivering.start()
        item = NewInboxItem("r", "signal", "go", b"\xc0", time.time())
        await ops.deliver(conns[0], item, strict=True)  # inserted and woken, not committed
        release = Release("r", Fence("w1", record.epoch), park=True)
        releasing = asyncio.ensure_future(ops.release(conns[1], [release]))
        await asyncio.sleep(0.3)  # done, or waiting for the delivery's row lock
        await delivering.commit()
        await releasing
        row = await store.get_run("r")
    finally:
        for conn in conns:
            await conn.close()
        await store.close()
    assert row is not None and row.ready_at is not None, "parked with a signal in its inbox"


async def test_select_over_a_child_run_started_in_a_task(tmp_path: Path) -> None:
    """Found by the fuzzer, fixed: a run racing ctx.run_child() (as a task) against a signal
    with ctx.wait() is parked while the child is being created (its idle check does not
    count a child start in flight): the parent's ChildStarted is rejected (lease released),
    the child runs and its end is recorded (ChildCompleted), but the re-executed parent
    never sees it: it hangs"""
    app = _app(tmp_path)

    @app.workflow(name="kid")
    async def kid(ctx: Context) -> str:
        return "k"

    @app.workflow(name="parent")
    async def parent(ctx: Context) -> str:
        child = asyncio.ensure_future(ctx.run_child(kid, run_id="p.kid"))
        never = asyncio.ensure_future(ctx.wait_for_signal("never"))
        done, _ = await ctx.wait([child, never], return_when=asyncio.FIRST_COMPLETED)
        return str(next(iter(done)).result())

    async with app:
        handle = await app.start(parent, run_id="p")
        try:
            result = await handle.result(timeout=5)
        except TimeoutError:
            result = f"still {await handle.status()}: {[e.type for e in await app.events('p')]}"
    assert result == "k"
