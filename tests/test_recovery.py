"""Reopening a database resumes unfinished runs without re-running completed steps (in-process;
tests/crash does the same with SIGKILLed subprocesses)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from sdk import App, Context


def build(path: Path, calls: Counter[str], gate: asyncio.Event | None) -> App:
    app = App(f"sqlite:///{path}", poll_interval=0.05, lease_ttl=5.0)

    @app.step()
    async def step(name: str) -> str:
        calls[name] += 1
        if name == "c" and gate is not None:
            await gate.wait()  # first process: "c" never finishes
        return name.upper()

    @app.workflow()
    async def abc(ctx: Context, tag: str) -> str:
        a, b = await asyncio.gather(step("a"), step("b"))
        c = await step("c")
        return f"{tag}:{a}{b}{c}"

    return app


async def test_reopening_resumes_unfinished_runs(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    calls: Counter[str] = Counter()
    first = build(path, calls, gate=asyncio.Event())
    async with first:
        for i in range(5):
            await first.start("abc", f"t{i}", run_id=f"run-{i}")
        while calls["c"] < 5:  # noqa: ASYNC110  (a counter, polled; no event to wait on)
            await asyncio.sleep(0.01)
        statuses = {r.status for r in await first.list_runs()}
    assert statuses == {"running"}
    assert calls == Counter({"a": 5, "b": 5, "c": 5})

    second = build(path, calls, gate=None)
    async with second:
        results = [await second.handle(f"run-{i}").result(timeout=10) for i in range(5)]
        info = await second.get_run("run-0")
    assert results == [f"t{i}:ABC" for i in range(5)]
    # a and b were recorded before the stop: not run again; c was in flight: run again.
    assert calls == Counter({"a": 5, "b": 5, "c": 10})
    assert [(s.name, s.status) for s in info.steps] == [
        ("step", "succeeded"),
        ("step", "succeeded"),
        ("step", "succeeded"),
    ]


async def test_a_stopped_worker_releases_its_leases_at_once(tmp_path: Path) -> None:
    """A graceful stop gives the leases back: the next worker needn't wait for expiry."""
    path = tmp_path / "r.db"
    calls: Counter[str] = Counter()
    first = build(path, calls, gate=asyncio.Event())
    async with first:
        await first.start("abc", "x", run_id="r")
        while calls["c"] < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    second = build(path, calls, gate=None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with second:
        assert await second.handle("r").result(timeout=10) == "x:ABC"
    # The lease was 5 s; a released lease is claimed on the first poll.
    assert loop.time() - started < 2.0


async def test_a_graceful_stop_makes_everything_appended_durable_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's result appended but not yet written when the app closes is written before the
    lease goes back: the next worker does not run the step again. (The write-behind delay is
    made long, so only the stop can write it.)"""
    import durable._runlog

    monkeypatch.setattr(durable._runlog, "WRITE_BEHIND_DELAY", 60.0)
    path = tmp_path / "r.db"
    calls: Counter[str] = Counter()
    reached = asyncio.Event()

    def build_waiting() -> App:
        app = App(f"sqlite:///{path}", poll_interval=0.05, lease_ttl=5.0)

        @app.step()
        async def once() -> str:
            calls["once"] += 1
            return "done"

        @app.workflow()
        async def waits(ctx: Context) -> str:
            value = await once()
            reached.set()
            await asyncio.sleep(3600)  # not durable: nothing here makes the result durable
            return value

        return app

    async with build_waiting() as first:
        await first.start("waits", run_id="w")
        await asyncio.wait_for(reached.wait(), 10)
    monkeypatch.undo()
    async with App(f"sqlite:///{path}", worker=False) as reader:
        types = [e.type for e in await reader.events("w")]
    assert types == ["RunStarted", "StepStarted", "StepCompleted"]
    assert calls["once"] == 1
