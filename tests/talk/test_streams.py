"""Streams through the App: workflow-level writes (logged, replayed without writing again),
step-body writes (exactly once across retries, from async and sync bodies), live readers,
resuming after an offset, the end (close, or the run ending), and the errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import durable
from durable import StreamClosedError, StreamItem, current_step
from sdk import App, Context, RetryPolicy

ATTEMPTS: list[tuple[int, int]] = []  # (attempt, stream_resume) of the flaky step


def make_app(url: str) -> App:
    app = App(url, poll_interval=0.05)

    @app.step
    async def produce(n: int) -> int:
        for i in range(n):
            durable.write_stream("numbers", i)
        return n

    @app.step
    def produce_in_thread(n: int) -> int:
        for i in range(n):
            durable.write_stream("threaded", f"t{i}")
        durable.close_stream("threaded")
        return n

    @app.step(retry=RetryPolicy(max_attempts=3, initial_delay=0.01))
    async def flaky(n: int) -> int:
        step = current_step()
        ATTEMPTS.append((step.attempt, step.streams_written.get("flaky", 0)))
        for i in range(n):
            durable.write_stream("flaky", i)
            if step.attempt == 1 and i == 2:
                raise RuntimeError("the model connection dropped")
        durable.close_stream("flaky")
        return n

    @app.step(retry=RetryPolicy(max_attempts=3, initial_delay=0.01))
    def resuming(n: int) -> int:
        # Values that differ per attempt (a real model): continue after the stored ones.
        step = current_step()
        done = step.stream_resume("resumed")
        for i in range(done, n):
            durable.write_stream("resumed", f"attempt{step.attempt}-{i}")
            if step.attempt == 1 and i == 2:
                raise RuntimeError("cut off")
        return done

    @app.workflow
    async def resumed(ctx: Context, n: int) -> int:
        return await resuming(n)

    @app.step
    async def late_write() -> None:
        durable.write_stream("done", "too late")

    @app.workflow
    async def talker(ctx: Context, n: int) -> str:
        ctx.write_stream("log", "start")
        await produce(n)
        ctx.write_stream("log", {"produced": n})
        approval = await ctx.wait_for_signal("go")
        ctx.write_stream("log", approval)
        ctx.close_stream("log")
        return "ok"

    @app.workflow
    async def retried(ctx: Context, n: int) -> int:
        return await flaky(n)

    @app.workflow
    async def threaded(ctx: Context, n: int) -> int:
        return await produce_in_thread(n)

    @app.workflow
    async def after_close(ctx: Context) -> str:
        ctx.write_stream("done", 1)
        ctx.close_stream("done")
        try:
            ctx.write_stream("done", 2)
        except StreamClosedError as exc:
            caught = str(exc)
        try:
            await late_write()
        except durable.StepFailed as exc:
            return f"{caught} | {exc.error.type}: {exc.error.message}"
        return "no error"

    @app.workflow
    async def unclosed(ctx: Context) -> str:
        await produce(3)
        return "bye"

    @app.workflow
    async def too_big(ctx: Context) -> str:
        ctx.write_stream("big", "x" * (65 * 1024))
        return "no"

    return app


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'd.db'}"


async def items(app: App, run_id: str, key: str, after: int = 0) -> list[tuple[int, object]]:
    return [(i.offset, i.value) async for i in app.stream_items(run_id, key, after=after)]


async def test_workflow_writes_are_replayed_without_writing_again(url: str) -> None:
    async with make_app(url) as app:
        await app.start("talker", 3, run_id="t1")
        await until_counted(app, "t1", "log", 2)
    # The app closed with the run waiting for its signal: reopening replays every write.
    async with make_app(url) as app:
        await app.signal("t1", "go", "approved")
        assert await app.handle("t1").result(timeout=30) == "ok"
        assert await items(app, "t1", "log") == [
            (1, "start"),
            (2, {"produced": 3}),
            (3, "approved"),
        ]
        assert await items(app, "t1", "numbers") == [(1, 0), (2, 1), (3, 2)]
        keys = {k.key: (k.count, k.closed) for k in await app.stream_keys("t1")}
        assert keys == {"log": (3, True), "numbers": (3, False)}
        logged = [type(e.event).__name__ for e in await app.engine.client.events("t1")]
        assert logged.count("StreamWritten") == 3 and logged.count("StreamClosed") == 1
        # Resuming after an offset.
        assert await items(app, "t1", "log", after=2) == [(3, "approved")]
        assert await items(app, "t1", "log", after=3) == []


async def until_counted(app: App, run_id: str, key: str, count: int) -> None:
    for _ in range(500):
        found = {k.key: k.count for k in await app.stream_keys(run_id)}
        if found.get(key, 0) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"stream {key!r} of {run_id!r} never reached {count} values")


async def test_a_live_reader_gets_values_as_they_are_written_and_ends_at_close(url: str) -> None:
    async with make_app(url) as app:
        await app.start("talker", 2, run_id="t2")
        got: list[object] = []

        async def read() -> None:
            async for value in app.read_stream("t2", "log"):
                got.append(value)

        reader = asyncio.ensure_future(read())
        for _ in range(200):
            if len(got) == 2:
                break
            await asyncio.sleep(0.02)
        assert got == ["start", {"produced": 2}] and not reader.done()
        await app.signal("t2", "go", "yes")
        await asyncio.wait_for(reader, 10)  # ends at the close
        assert got == ["start", {"produced": 2}, "yes"]


async def test_a_step_retried_midway_writes_each_offset_once(url: str) -> None:
    ATTEMPTS.clear()
    async with make_app(url) as app:
        handle = await app.start("retried", 5, run_id="r1")
        assert await handle.result(timeout=30) == 5
        assert await items(app, "r1", "flaky") == [(i + 1, i) for i in range(5)]
        # The second attempt was told how far the first one got.
        assert ATTEMPTS == [(1, 0), (2, 3)]
        assert [(k.key, k.count, k.closed) for k in await app.stream_keys("r1")] == [
            ("flaky", 5, True)
        ]


async def test_a_step_with_different_values_per_attempt_resumes_after_the_stored_ones(
    url: str,
) -> None:
    async with make_app(url) as app:
        handle = await app.start("resumed", 5, run_id="r2")
        assert await handle.result(timeout=30) == 3  # attempt 2 was told 3 were stored
        assert [v async for v in app.read_stream("r2", "resumed")] == [
            "attempt1-0",
            "attempt1-1",
            "attempt1-2",
            "attempt2-3",
            "attempt2-4",
        ]


async def test_a_sync_step_in_a_thread_writes_in_order(url: str) -> None:
    async with make_app(url) as app:
        handle = await app.start("threaded", 50, run_id="s1")
        assert await handle.result(timeout=30) == 50
        assert [v async for v in app.read_stream("s1", "threaded")] == [f"t{i}" for i in range(50)]


async def test_writing_after_close_is_a_clear_error(url: str) -> None:
    async with make_app(url) as app:
        handle = await app.start("after_close", run_id="c1")
        result = await handle.result(timeout=30)
        caught, step_error = result.split(" | ")
        assert "stream 'done' is closed" in caught
        assert "StreamClosedError" in step_error and "stream 'done' is closed" in step_error
        assert await items(app, "c1", "done") == [(1, 1)]
        # Not retried: the same write would be refused again.
        run = await app.engine.client.get_run("c1")
        (step,) = run.steps
        assert step.attempts == 1


async def test_a_reader_of_an_unclosed_stream_ends_with_the_run(url: str) -> None:
    async with make_app(url) as app:
        with pytest.raises(durable.RunNotFoundError):  # reading before the run exists
            await items(app, "u1", "numbers")
        handle = await app.start("unclosed", run_id="u1")
        reader2 = asyncio.ensure_future(items(app, "u1", "numbers"))
        assert await handle.result(timeout=30) == "bye"
        assert await asyncio.wait_for(reader2, 10) == [(1, 0), (2, 1), (3, 2)]


async def test_bad_calls_get_clear_errors(tmp_path: Path) -> None:
    async with make_app(f"sqlite:///{tmp_path / 'e.db'}") as app:
        handle = await app.start("too_big", run_id="b1")
        with pytest.raises(durable.RunFailed, match="MAX_STREAM_VALUE_BYTES"):
            await handle.result(timeout=30)
        with pytest.raises(ValueError, match="after=-1"):
            await items(app, "b1", "big", after=-1)
        with pytest.raises(ValueError, match="stream key ''"):
            await items(app, "b1", "")
        with pytest.raises(RuntimeError, match="only available in workflow code or a step"):
            durable.write_stream("k", 1)
        assert StreamItem(1, "a").offset == 1
