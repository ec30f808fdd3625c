"""External waits in one process, on a real SQLite file: the token handed to a step, completed,
failed or timed out exactly once; clear errors for a second settle and for bad tokens; a
parked run woken by its completion and by its deadline; the token the same on replay."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from durable import ExternalAlreadySettledError, ExternalFailed, InvalidTokenError, replay
from durable._events import ExternalCompleted
from durable.runtime._external import decode_token, encode_token
from sdk import App, Context


def make_app(tmp_path: Path) -> tuple[App, list[str]]:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    sent: list[str] = []

    @app.step()
    async def send_invoice(token: str) -> None:
        sent.append(token)  # the outside system gets the token

    @app.workflow()
    async def pay(ctx: Context, timeout: float) -> Any:
        wait = ctx.wait_external(timeout=timeout, name="payment")
        await send_invoice(wait.token)
        try:
            return {"paid": await wait}
        except ExternalFailed as exc:
            return {"failed": exc.error.message, "type": exc.error.type}
        except TimeoutError:
            return {"timed_out": True}

    return app, sent


async def _token(sent: list[str], count: int = 1) -> str:
    deadline = time.monotonic() + 20
    while len(sent) < count:
        assert time.monotonic() < deadline, "the step never got the token"
        await asyncio.sleep(0.01)
    return sent[count - 1]


async def test_complete_once_then_clear_errors(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path)
    async with app:
        handle = await app.start("pay", 60)
        token = await _token(sent)
        assert token.startswith("dx1.") and decode_token(token)[0] == handle.run_id
        [waiting] = await app.external_waits(handle.run_id)
        assert (waiting.name, waiting.status) == ("payment", "waiting")
        assert "token" not in type(waiting).__struct_fields__ and "nonce" not in str(waiting)
        await app.complete(token, {"amount": 5})
        assert await handle.result(20) == {"paid": {"amount": 5}}
        with pytest.raises(ExternalAlreadySettledError, match="already completed") as info:
            await app.complete(token, "again")
        assert info.value.status == "completed"
        with pytest.raises(ExternalAlreadySettledError, match="already completed"):
            await app.fail(token, "too late")
        events = await app.events(handle.run_id)
        [done] = [e.event for e in events if isinstance(e.event, ExternalCompleted)]
        assert done.status == "completed"
        # The log replays without divergence (the wait and its outcome are recorded).
        report = await replay(handle.run_id, events, app.registry)
        assert report.deterministic and report.divergence is None, report
        # Bad tokens.
        for bad in ("", "nope", "dx1.!!!", "dx1." + token[4:20], 42):
            with pytest.raises(InvalidTokenError):
                await app.complete(bad, 1)  # type: ignore[arg-type]
        run_id, pos, nonce = decode_token(token)
        with pytest.raises(InvalidTokenError, match="names no external wait"):
            await app.complete(encode_token(run_id, pos, nonce[:-1] + "x"), 1)
        with pytest.raises(InvalidTokenError, match="names no external wait"):
            await app.complete(encode_token(run_id, pos + 7, nonce), 1)
        with pytest.raises(InvalidTokenError, match="does not have"):
            await app.complete(encode_token("no-such-run", pos, nonce), 1)


async def test_fail_raises_external_failed_in_the_workflow(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path)
    async with app:
        handle = await app.start("pay", 60)
        await app.fail(await _token(sent), ValueError("card declined"))
        assert await handle.result(20) == {"failed": "card declined", "type": "ValueError"}
        handle2 = await app.start("pay", 60)
        await app.fail(await _token(sent, 2), "nope", type="Declined")
        assert await handle2.result(20) == {"failed": "nope", "type": "Declined"}


async def test_timeout_then_late_completion(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path)
    async with app:
        handle = await app.start("pay", 0.3)
        token = await _token(sent)
        assert await handle.result(20) == {"timed_out": True}
        with pytest.raises(ExternalAlreadySettledError, match="already timed out"):
            await app.complete(token, 1)
        [row] = await app.external_waits(handle.run_id)
        assert row.status == "timed_out"


async def test_a_parked_run_is_woken_by_completion_and_by_deadline(tmp_path: Path) -> None:
    app, sent = make_app(tmp_path)
    async with app:
        worker = app.engine.worker
        assert worker is not None
        long = await app.start("pay", 3600)
        token = await _token(sent)
        short = await app.start("pay", 2.5)  # > park_after (1 s): parked, woken at its deadline
        await _token(sent, 2)
        deadline = time.monotonic() + 10
        # Parked: no longer executing here (the lease given back).
        while {long.run_id, short.run_id} & set(worker.executors):
            assert time.monotonic() < deadline, "the runs were not parked"
            await asyncio.sleep(0.02)
        await app.complete(token, "ok")
        assert await long.result(20) == {"paid": "ok"}
        assert await short.result(20) == {"timed_out": True}
