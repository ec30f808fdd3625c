"""ctx.patched(): code changed under running workflows. A run that passed the patch point
before the change keeps the old path (its log still lines up); new runs take the new path,
recorded; and the run that resumed under changed code records and shows the change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from durable import events as ev
from sdk import App, Context

pytestmark = pytest.mark.asyncio


async def test_patched_keeps_old_runs_on_the_old_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    calls: list[str] = []

    def build(patched: bool) -> App:
        app = App(url, poll_interval=0.05, park_after=0.1)

        @app.step()
        async def act(name: str) -> str:
            calls.append(name)
            return name

        if not patched:

            @app.workflow(name="order")
            async def order_v1(ctx: Context) -> list[str]:
                first = await act("reserve")
                go = await ctx.wait_for_signal("go")
                return [first, go, await act("email")]

        else:

            @app.workflow(name="order")
            async def order_v1b(ctx: Context) -> list[str]:
                first = await act("reserve")
                if ctx.patched("sms-first"):
                    await act("sms")
                go = await ctx.wait_for_signal("go")
                return [first, go, await act("email")]

        return app

    old_app = build(patched=False)
    async with old_app:
        await old_app.start("order", run_id="old")
        for _ in range(100):
            if any(isinstance(e.event, ev.WaitStarted) for e in await old_app.events("old")):
                break
            await asyncio.sleep(0.05)

    new_app = build(patched=True)
    async with new_app:
        await new_app.start("order", run_id="new")
        await new_app.signal("old", "go", "ok")
        await new_app.signal("new", "go", "ok")
        assert await new_app.handle("old").result(20) == ["reserve", "ok", "email"]
        assert await new_app.handle("new").result(20) == ["reserve", "ok", "email"]
        old_events = await new_app.events("old")
        new_events = await new_app.events("new")
        shown = await new_app.get_run("old")
    # The old run never sent an SMS; the new one did, after recording the patch.
    assert calls.count("sms") == 1
    assert calls.count("reserve") == 2 and calls.count("email") == 2
    markers = [e.event for e in new_events if isinstance(e.event, ev.MarkerRecorded)]
    assert [(m.pos, m.kind) for m in markers] == [(1, "patch")]
    assert not any(isinstance(e.event, ev.MarkerRecorded) for e in old_events)
    # The old run resumed under changed code: recorded, and shown.
    changes = [e.event for e in old_events if isinstance(e.event, ev.CodeChanged)]
    assert len(changes) == 1 and changes[0].fingerprint != shown.fingerprint
    assert shown.code_changes and shown.code_changes[0].startswith(changes[0].fingerprint[:12])
