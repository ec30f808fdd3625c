"""Streams over HTTP (a real `durable serve` process) and the CLI (`durable runs stream`): the
keys, JSON pages, SSE (from the start, from Last-Event-ID, ending `closed` or `run ended`),
keepalives, and bad input answered with clear 4xx errors."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from litestar.response.sse import ServerSentEventMessage
from streamkit import Reader, env, serving

from durable.api import _streams as api_streams

APP = textwrap.dedent(
    """
    import asyncio
    import durable
    from sdk import App, Context

    app = App("sqlite:///unused.db")

    @app.step
    async def count(n: int) -> int:
        for i in range(n):
            durable.write_stream("numbers", {"i": i})
        durable.close_stream("numbers")
        return n

    @app.workflow(name="hold")
    async def hold(ctx: Context) -> str:
        ctx.write_stream("log", "waiting")
        return await ctx.wait_for_signal("go")

    @app.workflow(name="talk")
    async def talk(ctx: Context, n: int) -> str:
        ctx.write_stream("log", "hello\\x1b[31m")
        await count(n)
        ctx.write_stream("log", "bye")
        return "done"
    """
)


def finished(api: httpx.Client, run_id: str) -> None:
    deadline = time.monotonic() + 30
    while api.get(f"/executions/{run_id}").json().get("status") != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def sse(base: str, path: str, last: int | None = None) -> Reader:
    reader = Reader(base, path, drop=False)
    if last is not None:
        reader.values.append((last, None))  # resumes with Last-Event-ID: last
    reader.run()
    assert reader.failure is None, reader.failure
    if last is not None:
        reader.values.pop(0)
    return reader


def test_streams_over_http_and_the_cli(tmp_path: Path) -> None:
    (tmp_path / "talkapp.py").write_text(APP)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with serving(url, tmp_path, "--app", "talkapp:app", extra_path=str(tmp_path)) as (
        base,
        api,
        _,
    ):
        started = api.post(
            "/executions/start", json={"workflowId": "talk", "context": 7, "executionId": "h1"}
        )
        assert started.status_code == 201, started.text
        # A live reader from the start: every value, then the end the step's close gives.
        live = sse(base, "/executions/h1/streams/numbers")
        assert live.values == [(i + 1, {"i": i}) for i in range(7)]
        assert live.end == {"reason": "closed"}
        finished(api, "h1")
        keys = api.get("/executions/h1/streams").json()["streams"]
        assert keys == [
            {"key": "log", "count": 2, "closed": False},
            {"key": "numbers", "count": 7, "closed": True},
        ]
        # Never closed: the end comes with the run's.
        log = sse(base, "/executions/h1/streams/log")
        assert log.values == [(1, "hello\x1b[31m"), (2, "bye")]
        assert log.end == {"reason": "run ended"}
        # Resuming: Last-Event-ID wins over ?after=.
        resumed = sse(base, "/executions/h1/streams/numbers?after=1", last=5)
        assert resumed.values == [(6, {"i": 5}), (7, {"i": 6})]
        assert sse(base, "/executions/h1/streams/numbers", last=7).values == []
        # JSON pages.
        page = api.get("/executions/h1/streams/numbers", params={"limit": 3}).json()
        assert page == {
            "items": [{"offset": i + 1, "value": {"i": i}} for i in range(3)],
            "closed": False,
            "nextAfter": 3,
        }
        last = api.get("/executions/h1/streams/numbers", params={"after": 4, "limit": 3}).json()
        assert [i["offset"] for i in last["items"]] == [5, 6, 7]
        assert last["closed"] is True and last["nextAfter"] == 7
        empty = api.get("/executions/h1/streams/nothing").json()
        assert empty == {"items": [], "closed": False, "nextAfter": 0}
        # Bad input: clear 4xx, never a 500.
        assert api.get("/executions/nope/streams").status_code == 404
        missing = api.get("/executions/nope/streams/k")
        assert missing.status_code == 404 and "no execution with id 'nope'" in missing.text
        assert api.get("/executions/h1/streams/numbers", params={"after": -1}).status_code == 400
        bad = api.get(
            "/executions/h1/streams/numbers",
            headers={"Accept": "text/event-stream", "Last-Event-ID": "abc"},
        )
        assert bad.status_code == 400 and "Last-Event-ID 'abc'" in bad.text

    # The CLI, on the same database.
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "durable", "runs", "stream", *args, "--db", url]
        return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=60)

    text = cli("h1", "log")
    assert text.returncode == 0, text.stderr
    assert text.stdout == "hello\\x1b[31mbye\n"  # stored text runs no terminal sequence
    numbers = cli("h1", "numbers", "--after", "5")
    assert numbers.stdout == '{"i":5}\n{"i":6}\n'
    as_json = cli("h1", "numbers", "--json", "--after", "6")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"offset": 7, "value": {"i": 6}}
    ]
    unknown = cli("nope", "log")
    assert unknown.returncode != 0 and "no run with id 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_sigterm_ends_an_open_stream_at_once_and_without_an_end(tmp_path: Path) -> None:
    (tmp_path / "talkapp.py").write_text(APP)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with serving(url, tmp_path, "--app", "talkapp:app", extra_path=str(tmp_path)) as (
        base,
        api,
        server,
    ):
        body = {"workflowId": "hold", "executionId": "w1"}
        assert api.post("/executions/start", json=body).status_code == 201
        reader = Reader(base, "/executions/w1/streams/log", drop=False)
        reader.start()
        deadline = time.monotonic() + 30
        while not reader.values:
            assert time.monotonic() < deadline, "the stream sent nothing"
            time.sleep(0.02)
        time.sleep(0.3)  # the stream now waits for the next value
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
        reader.stop.set()
        assert time.monotonic() - sent < 2.0, "durable serve took too long with a stream open"
    assert reader.values == [(1, "waiting")] and reader.end is None  # no end: reconnect


async def test_a_quiet_stream_gets_keepalive_comments() -> None:
    api_streams.KEEPALIVE = 0.05
    try:

        async def slow() -> AsyncIterator[ServerSentEventMessage]:
            await asyncio.sleep(0.3)
            yield ServerSentEventMessage(data="1", event="value", id=1)

        got = [m async for m in api_streams._keepalive(slow())]
    finally:
        api_streams.KEEPALIVE = 15.0
    assert [m.comment for m in got[:-1]] and all(m.comment == "keepalive" for m in got[:-1])
    assert got[-1].data == "1" and got[-1].id == 1
