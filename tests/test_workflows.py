"""Behaviour of Python workflows through the public SDK, on real SQLite files."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
from pathlib import Path

import msgspec
import pytest

from durable import events as ev
from durable import replay
from sdk import App, Context, RetryPolicy, RunFailed, StepFailed, current_step


def make_app(tmp_path: Path, name: str = "wf.db") -> App:
    return App(f"sqlite:///{tmp_path / name}", poll_interval=0.05)


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Box:
    label: str
    size: float


async def test_steps_results_and_concurrency(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    running = 0
    peak = 0

    @app.step()
    async def fetch(source: str) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return [1, 2, 3] if source == "a" else [10, 20]

    @app.step()
    def parse(text: str) -> int:
        return len(text) if threading.current_thread().name.startswith("durable-step") else -1

    @app.workflow(name="etl", version="1")
    async def etl(ctx: Context, event: dict[str, int]) -> dict[str, int]:
        a, b = await asyncio.gather(fetch("a"), fetch("b"))
        n = await parse("hello")
        return {"total": sum(a) + sum(b) + event["x"], "n": n}

    async with app:
        handle = await app.start(etl, {"x": 1}, run_id="order-1")
        assert await handle.result() == {"total": 37, "n": 5}
        assert peak == 2, "fetch('a') and fetch('b') must overlap in time"
        info = await app.get_run("order-1")
    assert info.status == "succeeded"
    assert info.workflow == "etl" and info.version == "1"
    assert info.input == {"x": 1}
    assert [(s.position, s.name, s.status, s.attempts) for s in info.steps] == [
        (0, "fetch", "succeeded", 1),
        (1, "fetch", "succeeded", 1),
        (2, "parse", "succeeded", 1),
    ]
    assert info.steps[0].result == [1, 2, 3]
    assert info.steps[1].result == [10, 20]
    assert info.finished_at is not None and info.finished_at >= info.created_at


async def test_gather_positions_follow_call_order_not_completion_order(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step()
    async def slow(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        return name

    @app.workflow()
    async def race(ctx: Context) -> list[str]:
        return list(await asyncio.gather(slow("first", 0.15), slow("second", 0.0)))

    async with app:
        assert await app.run(race, run_id="r") == ["first", "second"]
        events = await app.events("r")
        info = await app.get_run("r")
    completed = [e.event for e in events if isinstance(e.event, ev.StepCompleted)]
    # "second" finished first, yet the call order decides the positions.
    assert [c.pos for c in completed] == [1, 0]
    assert [(s.position, s.result) for s in info.steps] == [(0, "first"), (1, "second")]


async def test_outside_a_workflow_a_step_is_a_plain_call(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step()
    async def double(x: int) -> int:
        return 2 * x

    @app.step()
    def triple(x: int) -> int:
        return 3 * x

    assert await double(4) == 8
    assert triple(4) == 12  # type: ignore[comparison-overlap]  # sync step: plain value


async def test_typed_results_round_trip_live_and_on_replay(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    seen: list[object] = []

    @app.step()
    async def point() -> Point:
        return Point(1, 2)

    @app.step()
    async def box() -> Box:
        return Box("b", 1.5)

    @app.step()
    async def pair() -> tuple[int, int]:
        return (3, 4)

    @app.workflow()
    async def typed(ctx: Context) -> int:
        p, b, t = await point(), await box(), await pair()
        seen.extend([p, b, t])
        return p.x + p.y + int(b.size) + t[0]

    async with app:
        assert await app.run(typed, run_id="t") == 7
        report = await replay("t", await app.events("t"), app.registry)
    assert report.deterministic
    # Live and replayed executions each saw the declared types, not bare dicts/lists.
    assert seen == [Point(1, 2), Box("b", 1.5), (3, 4)] * 2


async def test_context_values_are_recorded_once_and_replayed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    values: list[tuple[str, float, str]] = []

    @app.step()
    async def noop() -> None:
        return None

    @app.workflow()
    async def clocky(ctx: Context) -> list[str]:
        now, rnd, uid = ctx.now(), ctx.random(), ctx.uuid4()
        await noop()
        values.append((now.isoformat(), rnd, str(uid)))
        return [now.isoformat(), repr(rnd), str(uid)]

    async with app:
        first = await app.run(clocky, run_id="c")
        events = await app.events("c")
        report = await replay("c", events, app.registry)
    assert [e.type for e in events].count("MarkerRecorded") == 3
    assert report.deterministic, report.divergence
    assert len(values) == 2 and values[0] == values[1]
    assert first == [values[0][0], repr(values[0][1]), values[0][2]]


async def test_retries_follow_the_policy_and_record_the_schedule(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    attempts: list[float] = []
    policy = RetryPolicy(max_attempts=3, initial_delay=0.1, backoff=2.0, max_delay=10.0)

    @app.step(retry=policy)
    async def flaky() -> str:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) < 3:
            raise ConnectionError(f"try {len(attempts)}")
        return "ok"

    @app.workflow()
    async def wf(ctx: Context) -> str:
        return await flaky()

    async with app:
        assert await app.run(wf, run_id="r") == "ok"
        events = await app.events("r")
    assert len(attempts) == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.1 - 0.01 and gaps[1] >= 0.2 - 0.01
    failed = [(e.at, e.event) for e in events if isinstance(e.event, ev.StepFailed)]
    assert len(failed) == 2
    for (at, event), delay in zip(failed, (0.1, 0.2), strict=True):
        assert event.retryable is True
        assert event.next_attempt_at is not None
        assert abs(event.next_attempt_at - (at + delay)) < 0.05
        assert event.error.type == "ConnectionError"


async def test_retry_schedule_survives_a_restart(tmp_path: Path) -> None:
    calls: list[float] = []
    gate = asyncio.Event()

    def build() -> App:
        app = make_app(tmp_path)

        @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=1.5))
        async def once_failing() -> str:
            calls.append(asyncio.get_running_loop().time())
            if len(calls) == 1:
                gate.set()
                raise RuntimeError("first attempt fails")
            return "second"

        @app.workflow()
        async def wf(ctx: Context) -> str:
            return await once_failing()

        return app

    app1 = build()
    async with app1:
        await app1.start("wf", run_id="r")
        await gate.wait()
        await asyncio.sleep(0.1)  # the StepFailed with its next attempt time is committed
    stopped_at = asyncio.get_running_loop().time()
    app2 = build()
    async with app2:
        assert await app2.handle("r").result(timeout=10) == "second"
        events = await app2.events("r")
    failed = next(e.event for e in events if isinstance(e.event, ev.StepFailed))
    next_at = failed.next_attempt_at
    assert next_at is not None
    started = [e for e in events if e.type == "StepStarted"]
    assert len(calls) == 2
    # The restarted worker honoured the recorded schedule: not early...
    assert started[-1].at >= next_at - 0.01
    # ...and it did wait (the restart itself took far less than the delay).
    assert calls[1] - stopped_at >= 1.0


async def test_timeout_cancels_the_attempt_and_counts_as_failed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    cancelled = 0
    tries = 0

    @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01), timeout=0.1)
    async def slow() -> str:
        nonlocal cancelled, tries
        tries += 1
        try:
            await asyncio.sleep(0.5 if tries == 1 else 0)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return "fast enough"

    @app.step(timeout=0.1)
    def blocking() -> str:
        threading.Event().wait(0.4)
        return "too late"

    @app.workflow()
    async def wf(ctx: Context) -> list[str]:
        out = [await slow()]
        try:
            await blocking()
        except StepFailed as exc:
            out.append(exc.error.type)
        return out

    async with app:
        assert await app.run(wf, run_id="r") == ["fast enough", "durable.StepTimeoutError"]
        info = await app.get_run("r")
    assert cancelled == 1
    assert info.steps[0].attempts == 2
    assert info.steps[1].status == "failed"
    assert info.steps[1].error is not None and "timed out after 0.1s" in info.steps[1].error.message


async def test_step_failure_is_catchable_for_compensation(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    log: list[str] = []

    @app.step()
    async def reserve() -> str:
        log.append("reserve")
        return "res-1"

    @app.step()
    async def charge(amount: int) -> None:
        raise ValueError(f"card declined for {amount}")

    @app.step()
    async def release(reservation: str) -> None:
        log.append(f"release {reservation}")

    @app.workflow()
    async def saga(ctx: Context, amount: int) -> str:
        res = await reserve()
        try:
            await charge(amount)
        except StepFailed as exc:
            await release(res)
            return f"compensated: {exc.error.message}"
        return "charged"

    async with app:
        assert await app.run(saga, 5) == "compensated: card declined for 5"
    assert log == ["reserve", "release res-1"]


async def test_uncaught_failure_fails_the_run_with_the_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    async def boom() -> None:
        raise KeyError("missing")

    @app.workflow()
    async def wf(ctx: Context) -> None:
        await boom()

    async with app:
        with pytest.raises(RunFailed) as caught:
            await app.run(wf, run_id="f")
        info = await app.get_run("f")
        failed = await app.list_runs(status="failed")
    err = caught.value.error
    assert err.type == "durable.StepFailed"
    assert "'boom'" in err.message and "2 attempts" in err.message and "KeyError" in err.message
    assert "Traceback" in err.traceback and "await boom()" in err.traceback
    assert info.status == "failed" and info.error == err
    assert info.steps[0].attempts == 2 and info.steps[0].status == "failed"
    assert [r.run_id for r in failed] == ["f"]


async def test_non_retryable_errors_fail_at_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    tries = 0

    @app.step(retry=RetryPolicy(max_attempts=5, initial_delay=0.01, non_retryable=(TypeError,)))
    async def bad() -> None:
        nonlocal tries
        tries += 1
        raise TypeError("wrong")

    @app.workflow()
    async def wf(ctx: Context) -> None:
        await bad()

    async with app:
        with pytest.raises(RunFailed):
            await app.run(wf)
    assert tries == 1


async def test_watch_streams_events_live_until_the_end(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    release = asyncio.Event()

    @app.step()
    async def wait_for_release() -> int:
        await release.wait()
        return 1

    @app.workflow()
    async def wf(ctx: Context) -> int:
        return await wait_for_release()

    async with app:
        await app.start(wf, run_id="w")
        seen: list[str] = []

        async def follow() -> None:
            async for logged in app.watch("w"):
                seen.append(logged.type)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        assert seen == ["RunStarted", "StepStarted"]  # live: the run is still in its step
        release.set()
        await asyncio.wait_for(follower, 5)
    assert seen == ["RunStarted", "StepStarted", "StepCompleted", "RunCompleted"]


async def test_list_runs_filters(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.workflow(name="ok")
    async def ok(ctx: Context) -> int:
        return 1

    @app.workflow(name="bad")
    async def bad(ctx: Context) -> int:
        raise ValueError("no")

    async with app:
        for i in range(3):
            await app.run(ok, run_id=f"ok-{i}")
        with pytest.raises(RunFailed):
            await app.run(bad, run_id="bad-0")
        assert [r.run_id for r in await app.list_runs(workflow="ok")] == ["ok-2", "ok-1", "ok-0"]
        assert [r.run_id for r in await app.list_runs(status="failed")] == ["bad-0"]
        assert len(await app.list_runs(limit=2)) == 2
        with pytest.raises(ValueError, match="unknown status"):
            await app.list_runs(status="done")


async def test_steps_know_their_idempotency_key(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    keys: list[tuple[str, int]] = []

    @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
    async def charge() -> str:
        call = current_step()
        keys.append((call.idempotency_key, call.attempt))
        if call.attempt == 1:
            raise ConnectionError("timeout talking to the payment provider")
        return call.idempotency_key

    @app.step()
    def ship() -> str:  # in a worker thread
        return current_step().idempotency_key

    @app.workflow()
    async def wf(ctx: Context) -> list[str]:
        return [await charge(), await ship()]

    async with app:
        assert await app.run(wf, run_id="order-7") == ["order-7:0", "order-7:1"]
    # The same key on every attempt: the provider can drop the retry's duplicate.
    assert keys == [("order-7:0", 1), ("order-7:0", 2)]
    with pytest.raises(RuntimeError, match="only available inside a step"):
        current_step()
