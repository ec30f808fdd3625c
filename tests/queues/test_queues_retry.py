"""Retrying a failed queued run (app.retry, `durable retry`), on SQLite and PostgreSQL: the run
waits in its queue again (it does not run at once over the queue's limit), and a retry whose
dedupe key another unfinished run now holds is refused, naming that run (by the CLI too)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from durable import RepairError
from sdk import App, Context

FAIL: set[str] = set()
GATE: dict[str, asyncio.Event] = {}
STATE = {"now": 0, "peak": 0}


def make_app(url: str) -> App:
    app = App(url, poll_interval=0.05)
    app.queue("emails", concurrency=1)

    @app.step()
    async def work(name: str) -> str:
        STATE["now"] += 1
        STATE["peak"] = max(STATE["peak"], STATE["now"])
        try:
            if name in GATE:
                await GATE[name].wait()
            if name in FAIL:
                raise RuntimeError(f"{name} fails")
            return name
        finally:
            STATE["now"] -= 1

    @app.workflow
    async def email(ctx: Context, name: str) -> str:
        return await work(name)

    return app


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    FAIL.clear()
    GATE.clear()
    STATE.update(now=0, peak=0)
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'q.db'}"


async def failed(app: App, name: str, **start: object) -> str:
    FAIL.add(name)
    handle = await app.start("email", name, queue="emails", **start)  # type: ignore[arg-type]
    with pytest.raises(Exception, match=f"{name} fails"):
        await handle.result(timeout=30)
    FAIL.discard(name)
    return handle.run_id


async def test_a_retried_queued_run_waits_for_its_slot(url: str) -> None:
    GATE["hold"] = asyncio.Event()
    async with make_app(url) as app:
        bad = await failed(app, "bad")
        hold = await app.start("email", "hold", queue="emails")
        await _until(lambda: STATE["now"] == 1)  # "hold" has the queue's one slot
        await app.retry(bad)
        await asyncio.sleep(1.0)  # twenty polls: time enough to be claimed, were it free to
        info = await app.queue_info("emails")
        assert (info.waiting, info.running) == (1, 1)
        assert (await app.get_run(bad)).status == "pending"
        GATE["hold"].set()
        assert await app.handle(hold.run_id).result(timeout=30) == "hold"
        assert await app.handle(bad).result(timeout=30) == "bad"
    assert STATE["peak"] == 1


async def test_a_retry_whose_dedupe_key_is_held_names_the_holder(url: str) -> None:
    GATE["other"] = asyncio.Event()
    async with make_app(url) as app:
        bad = await failed(app, "bad", dedupe_key="order-7")
        other = await app.start("email", "other", queue="emails", dedupe_key="order-7")
        with pytest.raises(RepairError) as refused:
            await app.retry(bad)
        message = str(refused.value)
        assert other.run_id in message and "order-7" in message and "emails" in message
        assert (await app.get_run(bad)).status == "failed"  # nothing changed
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "durable", "retry", bad, "--db", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(cli.communicate(), 60)
        said = err.decode()
        assert cli.returncode == 2 and "Traceback" not in said, said
        assert other.run_id in said and "order-7" in said
        GATE["other"].set()
        assert await other.result(timeout=30) == "other"
        await app.retry(bad)  # the key is free again
        assert await app.handle(bad).result(timeout=30) == "bad"


async def _until(what: object, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not what():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
