"""Durable timers, signals, child runs and cancellation of Python workflows, on real SQLite
files: what the log records, what a replay gives back, and that waiting runs are parked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from durable import ChildRunFailed
from durable import events as ev
from sdk import App, Context

pytestmark = pytest.mark.asyncio


def make_app(tmp_path: Path, **kw: Any) -> App:
    return App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05, **kw)


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


async def test_a_short_sleep_is_recorded_and_waited_in_memory(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    calls: list[str] = []

    @app.step()
    async def mark(label: str) -> str:
        calls.append(label)
        return label

    @app.workflow()
    async def napper(ctx: Context) -> str:
        await mark("before")
        await ctx.sleep(0.3)
        return await mark("after")

    async with app:
        began = time.monotonic()
        assert await app.run(napper, timeout=20) == "after"
        took = time.monotonic() - began
        handle = await app.start(napper)
        await handle.result(20)
        events = await app.events(handle.run_id)
    assert took >= 0.3
    assert calls == ["before", "after", "before", "after"]
    timer = next(e.event for e in events if isinstance(e.event, ev.TimerStarted))
    fired_at, fired = next((e.at, e.event) for e in events if isinstance(e.event, ev.TimerFired))
    assert timer.pos == 1 and fired.pos == 1
    assert fired_at >= timer.fire_at  # never early


async def test_a_long_sleep_parks_the_run_and_it_wakes_on_time(tmp_path: Path) -> None:
    app = make_app(tmp_path, park_after=0.1)
    calls: list[str] = []

    @app.step()
    async def mark(label: str) -> str:
        calls.append(label)
        return label

    @app.workflow()
    async def sleeper(ctx: Context) -> str:
        await mark("before")
        await ctx.sleep(1.0)
        return await mark("after")

    async with app:
        handle = await app.start(sleeper)
        await asyncio.sleep(0.5)
        worker = app.engine.worker
        assert worker is not None
        # Parked: no executor holds it, and the row is released, due at the timer.
        assert handle.run_id not in worker.executors
        row = await app.engine.store.get_run(handle.run_id)
        assert row is not None and row.owner is None and row.ready_at is not None
        timer = next(
            e.event for e in await app.events(handle.run_id) if isinstance(e.event, ev.TimerStarted)
        )
        assert abs(row.ready_at - timer.fire_at) < 1e-6
        assert await handle.result(20) == "after"
        events = await app.events(handle.run_id)
    assert calls == ["before", "after"]  # the replay did not run "before" again
    fired = next(e for e in events if isinstance(e.event, ev.TimerFired))
    assert fired.at >= timer.fire_at


async def test_signals_sent_before_and_during_the_wait_arrive_in_order(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def approvals(ctx: Context) -> list[Any]:
        got = [await ctx.wait_for_signal("approve")]
        got.append(await ctx.wait_for_signal("approve"))
        try:
            await ctx.wait_for_signal("approve", timeout=0.2)
        except TimeoutError:
            got.append("timed out")
        return got

    async with app:
        handle = await app.start(approvals, run_id="r1")
        await app.signal("r1", "approve", {"by": "ann"})
        await app.signal("r1", "approve", {"by": "bob"})
        assert await handle.result(20) == [{"by": "ann"}, {"by": "bob"}, "timed out"]
        events = await app.events("r1")
        with pytest.raises(ValueError, match="already ended succeeded"):
            await app.signal("r1", "approve", 1)
    received = [(e.seq, e.event) for e in events if isinstance(e.event, ev.SignalReceived)]
    assert [signal.name for _, signal in received] == ["approve", "approve"]
    done = [e.event for e in events if isinstance(e.event, ev.WaitCompleted)]
    assert [d.signal_seq for d in done] == [received[0][0], received[1][0], 0]


async def test_cancel_runs_compensation_and_ends_cancelled(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    started = asyncio.Event()
    done: list[str] = []

    @app.step()
    async def book(item: str) -> str:
        done.append(f"book {item}")
        return item

    @app.step()
    async def slow_charge() -> None:
        started.set()
        await asyncio.sleep(30)
        done.append("charged")  # never: the cancellation stops it

    @app.step()
    async def refund(item: str) -> None:
        done.append(f"undo {item}")

    @app.workflow()
    async def saga(ctx: Context) -> str:
        booked = [await book("hotel"), await book("car")]
        try:
            await slow_charge()
        except asyncio.CancelledError:
            for item in reversed(booked):
                await refund(item)
            raise
        return "done"

    async with app:
        handle = await app.start(saga)
        await asyncio.wait_for(started.wait(), 10)
        await app.cancel(handle.run_id, "customer changed their mind")
        info = None
        for _ in range(200):
            info = await app.get_run(handle.run_id)
            if info.status == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert info is not None and info.status == "cancelled"
        events = await app.events(handle.run_id)
    assert done == ["book hotel", "book car", "undo car", "undo hotel"]
    cancelled = [
        e.event for e in events if isinstance(e.event, ev.StepFailed) and not e.event.retryable
    ]
    assert [c.error.type for c in cancelled] == ["durable.Cancelled"]
    assert isinstance(events[-1].event, ev.RunCancelled)
    assert events[-1].event.reason == "customer changed their mind"


async def test_child_runs_return_results_and_failures(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def square(ctx: Context, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n * n

    @app.workflow()
    async def parent(ctx: Context) -> list[Any]:
        first = await ctx.run_child(square, 3)
        child = await ctx.start_child(square, 4, run_id="four")
        out: list[Any] = [first, await child.result()]
        try:
            await ctx.run_child(square, -1)
        except ChildRunFailed as exc:
            out.append(exc.status)
        return out

    async with app:
        handle = await app.start(parent, run_id="p")
        assert await handle.result(20) == [9, 16, "failed"]
        four = await app.get_run("four")
        events = await app.events("p")
    assert four.status == "succeeded"
    started = [e.event for e in events if isinstance(e.event, ev.ChildStarted)]
    assert [s.run_id for s in started] == ["p.0", "four", "p.2"]
    ended = {
        e.event.run_id: e.event.status for e in events if isinstance(e.event, ev.ChildCompleted)
    }
    assert ended == {"p.0": "succeeded", "four": "succeeded", "p.2": "failed"}


async def test_a_deadline_fails_the_run_timed_out(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def forever(ctx: Context) -> None:
        await ctx.sleep(60)

    async with app:
        handle = await app.start(forever, timeout=0.5)
        began = time.monotonic()
        info = None
        for _ in range(200):
            info = await app.get_run(handle.run_id)
            if info.status == "failed":
                break
            await asyncio.sleep(0.05)
        assert info is not None and info.status == "failed"
        assert time.monotonic() - began < 5
        events = await app.events(handle.run_id)
    end = events[-1].event
    assert isinstance(end, ev.RunFailed) and end.error.type == "durable.RunTimedOut"


async def test_cancelling_a_parent_cancels_its_children_mid_step(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    running: set[str] = set()
    both = asyncio.Event()
    undone: list[str] = []

    @app.step()
    async def crunch(name: str) -> None:
        running.add(name)
        if len(running) == 2:
            both.set()
        await asyncio.sleep(30)

    @app.step()
    async def undo(name: str) -> None:
        undone.append(name)

    @app.workflow()
    async def worker_wf(ctx: Context, name: str) -> None:
        try:
            await crunch(name)
        except asyncio.CancelledError:
            await undo(name)
            raise

    @app.workflow()
    async def boss(ctx: Context) -> None:
        kids = [await ctx.start_child(worker_wf, n, run_id=f"kid-{n}") for n in ("a", "b")]
        try:
            await asyncio.gather(*(k.result() for k in kids))
        except asyncio.CancelledError:
            await undo("boss")
            raise

    async with app:
        await app.start(boss, run_id="boss")
        await asyncio.wait_for(both.wait(), 10)
        await app.cancel("boss", "stop everything")
        statuses: dict[str, str] = {}
        for _ in range(200):
            statuses = {r: (await app.get_run(r)).status for r in ("boss", "kid-a", "kid-b")}
            if all(s == "cancelled" for s in statuses.values()):
                break
            await asyncio.sleep(0.05)
        kid_events = await app.events("kid-a")
    assert statuses == {"boss": "cancelled", "kid-a": "cancelled", "kid-b": "cancelled"}
    assert sorted(undone) == ["a", "b", "boss"]
    failed = [e.event for e in kid_events if isinstance(e.event, ev.StepFailed)]
    assert [f.error.type for f in failed] == ["durable.Cancelled"]


async def test_cancelling_a_dag_run_kills_its_running_script(tmp_path: Path) -> None:
    from durable.dag import parse_definition

    app = make_app(tmp_path)
    pidfile = tmp_path / "pid"
    definition = parse_definition(
        f"""
name: slow
tasks:
  first: {{script: "echo $$ > {pidfile}; exec sleep 30"}}
  second: {{script: "echo never", depends_on: [first]}}
""",
        str(tmp_path / "slow.yaml"),
    )
    async with app:
        name = app.register_dag(definition)
        handle = await app.start(name)
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            await asyncio.sleep(0.05)
        pid = int(pidfile.read_text())
        began = time.monotonic()
        await app.cancel(handle.run_id, "enough")
        status = ""
        for _ in range(200):
            status = (await app.get_run(handle.run_id)).status
            if status == "cancelled":
                break
            await asyncio.sleep(0.05)
        assert status == "cancelled"
        assert time.monotonic() - began < 5
        events = await app.events(handle.run_id)
    # The script's process is dead: gone, or killed and waiting for init to reap it (its
    # parent, the launcher of durable.dag._launcher, was killed with it).
    assert _process_state(pid) in ("gone", "Z"), _process_state(pid)
    failed = [e.event for e in events if isinstance(e.event, ev.StepFailed)]
    assert [f.error.type for f in failed] == ["durable.Cancelled"]
    assert not any(isinstance(e.event, ev.StepStarted) and e.event.name == "second" for e in events)


def _process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat (R, S, Z...), or "gone"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[0]


async def test_a_signal_within_a_waits_timeout_arrives_and_its_deadline_is_ahead(
    tmp_path: Path,
) -> None:
    """The deadline is the wait's start plus its timeout (a wait whose deadline were computed
    backwards would time out at once: mutation testing found no test sending a signal inside a
    timeout)."""
    app = make_app(tmp_path)

    @app.workflow()
    async def patient(ctx: Context) -> Any:
        return await ctx.wait_for_signal("go", timeout=30)

    async with app:
        handle = await app.start(patient, run_id="p1")
        for _ in range(200):  # until the wait is recorded
            events = await app.events("p1")
            if any(isinstance(e.event, ev.WaitStarted) for e in events):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # well past a deadline that were already behind
        await app.signal("p1", "go", "now")
        assert await handle.result(20) == "now"
        events = await app.events("p1")
    logged = next(e for e in events if isinstance(e.event, ev.WaitStarted))
    assert isinstance(logged.event, ev.WaitStarted) and logged.event.deadline is not None
    assert abs(logged.event.deadline - (logged.at + 30)) < 1.0
