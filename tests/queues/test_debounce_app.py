"""app.debounce on SQLite and PostgreSQL, through the App: a burst of calls starts one run with
the last input, not before `delay` after the last call; max_wait caps a burst that goes on; a
call after the run started begins a second run; the waiting run survives closing the app;
several apps (stores) of one database calling at once share one run; debounced keys live
apart from dedupe keys and from other workflows' keys; bad calls get clear errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from durable import InvalidIdError, InvalidInputError, QueueError
from sdk import App, Context

STARTS: list[tuple[str, float]] = []  # (input, when the workflow began), in order


def make_app(url: str, *, worker: bool = True) -> App:
    app = App(url, worker=worker, poll_interval=0.05)
    app.queue("emails", concurrency=1)

    @app.workflow
    async def note(ctx: Context, text: str) -> str:
        STARTS.append((text, time.time()))
        return text

    @app.workflow
    async def other(ctx: Context, text: str) -> str:
        return text

    return app


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'd.db'}"


async def test_a_burst_starts_one_run_with_the_last_input_after_the_last_call(url: str) -> None:
    STARTS.clear()
    async with make_app(url) as app:
        handles = []
        for i in range(5):
            before_last = time.time()
            handles.append(await app.debounce("note", "k", 0.8, f"n{i}"))
            await asyncio.sleep(0.15)
        assert len({h.run_id for h in handles}) == 1
        assert await handles[0].result(timeout=30) == "n4"
        runs = await app.list_runs(workflow="note")
        assert [r.run_id for r in runs] == [handles[0].run_id]
    ((text, began),) = STARTS
    assert text == "n4" and began >= before_last + 0.8


async def test_max_wait_caps_a_burst_that_goes_on(url: str) -> None:
    STARTS.clear()
    async with make_app(url) as app:
        first = time.time()
        handles = []
        for i in range(10):  # one call every 0.2 s for 2 s: without a cap, never started
            handles.append(await app.debounce("note", "k", 0.8, f"n{i}", max_wait=1.2))
            await asyncio.sleep(0.2)
        ids = list(dict.fromkeys(h.run_id for h in handles))
        assert len(ids) == 2  # the capped run, then the burst begun after it started
        results = [await app.handle(i).result(timeout=30) for i in ids]
    # Capped at 1.2 s; uncapped it could not start before the calls end (2 s) plus 0.8 s.
    assert STARTS[0][1] >= first + 1.2 and STARTS[0][1] < first + 2.4, STARTS[0][1] - first
    # Each run carries the last input of the calls that returned it.
    last_of = {h.run_id: f"n{i}" for i, h in enumerate(handles)}
    assert results == [last_of[i] for i in ids] and results[1] == "n9"


async def test_a_call_after_the_run_started_begins_a_second_run(url: str) -> None:
    async with make_app(url) as app:
        one = await app.debounce("note", "k", 0.1, "a")
        assert await one.result(timeout=30) == "a"
        two = await app.debounce("note", "k", 0.1, "b")
        assert two.run_id != one.run_id
        assert await two.result(timeout=30) == "b"
        three = await app.debounce("note", "k", 5.0, "c")  # a third burst, still waiting
        assert three.run_id not in (one.run_id, two.run_id)
        assert (await three.info()).queue == "durable.debounce"


async def test_the_waiting_run_survives_closing_the_app(url: str) -> None:
    STARTS.clear()
    async with make_app(url, worker=False) as app:
        handles = [await app.debounce("note", "k", 1.0, s) for s in ("a", "b")]
        before_last = time.time()
        handles.append(await app.debounce("note", "k", 1.0, "c"))
    assert len({h.run_id for h in handles}) == 1
    async with make_app(url) as app:  # reopened at once: not started early either
        assert await app.handle(handles[0].run_id).result(timeout=30) == "c"
        assert len(await app.list_runs(workflow="note")) == 1
    ((text, began),) = STARTS
    assert text == "c" and began >= before_last + 1.0


async def test_several_apps_calling_at_once_share_one_run(url: str) -> None:
    apps = [make_app(url, worker=False) for _ in range(4)]
    for a in apps:
        await a.open()
    try:
        calls = [
            a.debounce("note", "k", 2.0, f"{n}.{i}") for i in range(8) for n, a in enumerate(apps)
        ]
        handles = await asyncio.gather(*calls)
    finally:
        for a in apps:
            await a.close()
    assert len({h.run_id for h in handles}) == 1
    async with make_app(url) as app:
        result = await app.handle(handles[0].run_id).result(timeout=30)
        assert len(await app.list_runs(workflow="note")) == 1
    assert result in {f"{n}.{i}" for i in range(8) for n in range(4)}


async def test_keys_of_other_workflows_and_dedupe_keys_are_apart(url: str) -> None:
    async with make_app(url, worker=False) as app:
        plain = await app.start("note", "x", queue="emails", dedupe_key="k")
        in_queue = await app.debounce("note", "k", 5.0, "y", queue="emails")
        elsewhere = await app.debounce("note", "k", 5.0, "z")
        other = await app.debounce("other", "k", 5.0, "w")
        again = await app.debounce("note", "k", 5.0, "y2", queue="emails")
        ids = {plain.run_id, in_queue.run_id, elsewhere.run_id, other.run_id}
        assert len(ids) == 4 and again.run_id == in_queue.run_id
        assert (await in_queue.info()).queue == "emails"


async def test_bad_calls_get_clear_errors(url: str) -> None:
    async with make_app(url, worker=False) as app:
        with pytest.raises(QueueError, match="delay must be seconds >= 0"):
            await app.debounce("note", "k", -1, "a")
        with pytest.raises(InvalidIdError, match="debounce key"):
            await app.debounce("note", "a\nb", 1, "a")
        with pytest.raises(InvalidIdError, match="debounce key"):
            await app.debounce("note", 7, 1, "a")  # type: ignore[arg-type]
        with pytest.raises(QueueError, match=r"max_wait .* is shorter than delay"):
            await app.debounce("note", "k", 10, "a", max_wait=5)
        with pytest.raises(QueueError, match="not declared in this application"):
            await app.debounce("note", "k", 1, "a", queue="nope")
        with pytest.raises(InvalidInputError):
            await app.debounce("note", "k", 1, 42)
        assert await app.list_runs(workflow="note") == []
    with pytest.raises(QueueError, match="reserved"):
        App(url).queue("durable.debounce")
