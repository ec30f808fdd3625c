"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from durable import CorruptEventError, SerializationError, WorkflowDefinitionError
from sdk import (
    App,
    Context,
    NonDeterminismError,
    RunFailed,
    RunIdConflictError,
    UnknownWorkflowError,
)
from storage import DatabaseOpenError, DatabaseURLError, EventChecksumError
from storage._checksum import event_checksum


class Opaque:
    """Not serializable by msgspec."""


def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'e.db'}"


async def test_unserializable_step_result_fails_the_step_naming_it(tmp_path: Path) -> None:
    app = App(db(tmp_path))
    tries = 0

    @app.step()
    async def make_opaque() -> object:
        nonlocal tries
        tries += 1
        return Opaque()

    @app.workflow()
    async def wf(ctx: Context) -> None:
        await make_opaque()

    async with app:
        with pytest.raises(RunFailed) as caught:
            await app.run(wf, run_id="r")
        info = await app.get_run("r")
    message = caught.value.error.message
    assert "result of step 'make_opaque'" in message and "Opaque" in message
    assert info.steps[0].error is not None
    assert info.steps[0].error.type == "durable.SerializationError"
    assert tries == 1  # not retried: the same value would fail again


async def test_unserializable_step_argument_raises_at_the_call(tmp_path: Path) -> None:
    app = App(db(tmp_path))
    ran = False

    @app.step()
    async def take(x: object) -> None:
        nonlocal ran
        ran = True

    @app.workflow()
    async def wf(ctx: Context) -> str:
        try:
            await take(Opaque())
        except SerializationError as exc:
            return str(exc)
        return "no error"

    async with app:
        result = await app.run(wf)
    assert "arguments of step 'take'" in result and "Opaque" in result
    assert not ran


async def test_unserializable_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    app = App(db(tmp_path))

    @app.workflow()
    async def wf(ctx: Context, data: object) -> None:
        return None

    async with app:
        with pytest.raises(SerializationError, match=r"input of workflow 'wf'.*Opaque"):
            await app.start(wf, Opaque())
        assert await app.list_runs() == []


async def test_unserializable_workflow_result_fails_the_run(tmp_path: Path) -> None:
    app = App(db(tmp_path))

    @app.workflow()
    async def wf(ctx: Context) -> object:
        return Opaque()

    async with app:
        with pytest.raises(RunFailed, match="result of workflow 'wf'"):
            await app.run(wf)


async def test_unknown_workflow(tmp_path: Path) -> None:
    app = App(db(tmp_path))

    @app.workflow(name="known")
    async def known(ctx: Context) -> None:
        return None

    async with app:
        with pytest.raises(UnknownWorkflowError, match=r"'nope'.*registered: known@1"):
            await app.start("nope")
        with pytest.raises(UnknownWorkflowError, match="version '7'"):
            await app.start("known", version="7")


def test_duplicate_workflow_name_and_version_is_refused() -> None:
    app = App("memory://")

    @app.workflow(name="etl", version="1")
    async def one(ctx: Context) -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match="'etl' version '1' is registered twice"):

        @app.workflow(name="etl", version="1")
        async def two(ctx: Context) -> None:
            return None

    @app.workflow(name="etl", version="2")  # another version is fine
    async def three(ctx: Context) -> None:
        return None


def test_bad_definitions_are_refused() -> None:
    app = App("memory://")
    with pytest.raises(WorkflowDefinitionError, match="must be an async function"):
        app.workflow(lambda ctx: None)  # type: ignore[type-var]

    async def too_many(ctx: Context, a: int, b: int) -> None:
        return None

    with pytest.raises(WorkflowDefinitionError, match="not 3 parameters"):
        app.workflow(too_many)


async def test_unwritable_database_path(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    with pytest.raises(DatabaseOpenError, match=r"missing-dir.*does not exist"):
        await app.open()
    not_a_db = tmp_path / "text.db"
    not_a_db.write_text("hello, I am not a database " * 100)
    app2 = App(f"sqlite:///{not_a_db}")
    with pytest.raises(DatabaseOpenError, match="not a SQLite database"):
        await app2.open()
    assert not_a_db.read_text().startswith("hello")  # left untouched


def test_bad_urls_are_refused() -> None:
    for url, pattern in [
        ("mysql://x/y", "unsupported database URL scheme 'mysql'"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///x.db?colour=red", "unknown option"),
    ]:
        with pytest.raises(DatabaseURLError, match=pattern):
            asyncio.run(App(url).open())


async def test_start_is_idempotent_on_run_id(tmp_path: Path) -> None:
    app = App(db(tmp_path))
    runs = 0

    @app.workflow()
    async def wf(ctx: Context, n: int) -> int:
        nonlocal runs
        runs += 1
        return n

    @app.workflow()
    async def other(ctx: Context) -> None:
        return None

    async with app:
        first = await app.start(wf, 1, run_id="same")
        assert await first.result() == 1
        second = await app.start(wf, 2, run_id="same")
        assert await second.result() == 1  # the existing run, not a new one
        with pytest.raises(RunIdConflictError, match="already names a run of workflow 'wf'"):
            await app.start(other, run_id="same")
    assert runs == 1


async def test_changed_code_at_a_recorded_position_is_reported(tmp_path: Path) -> None:
    blocked = asyncio.Event()

    app1 = App(db(tmp_path), poll_interval=0.05)

    @app1.step()
    async def a() -> int:
        return 1

    @app1.step(name="b")
    async def b_blocks() -> int:
        blocked.set()
        await asyncio.Event().wait()
        return 2

    @app1.workflow(name="wf")
    async def wf1(ctx: Context) -> int:
        return await a() + await b_blocks()

    async with app1:
        await app1.start("wf", run_id="nd")
        await blocked.wait()
        await asyncio.sleep(0.05)

    app2 = App(db(tmp_path), poll_interval=0.05)

    @app2.step(name="a")
    async def a2() -> int:
        return 1

    @app2.step()
    async def c() -> int:
        return 3

    @app2.workflow(name="wf")
    async def wf2(ctx: Context) -> int:
        first = await a2()
        try:
            second = await c()  # the log holds step 'b' at position 1
        except NonDeterminismError:
            second = 0  # catching it must not let the run go on as if nothing happened
        return first + second

    async with app2:
        with pytest.raises(RunFailed) as caught:
            await app2.handle("nd").result(timeout=10)
    err = caught.value.error
    assert err.type == "durable.NonDeterminismError"
    assert "position 1" in err.message
    assert "step 'b'" in err.message and "step 'c'" in err.message
    assert f"{__file__}:" in err.message  # the source line of the call


async def test_corrupted_event_payload_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    app = App(f"sqlite:///{path}", poll_interval=0.05)

    @app.step()
    async def one() -> int:
        return 1

    @app.workflow()
    async def wf(ctx: Context) -> int:
        return await one()

    async with app:
        await app.run(wf, run_id="ok")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE durable_events SET data = X'C1FFFF' WHERE run_id = 'ok' AND seq = 2")
    async with app:
        # Bytes changed after they were written: their checksum says so, on every read.
        with pytest.raises(EventChecksumError, match=r"run 'ok': event #2 \(\w+\) .* damaged"):
            await app.get_run("ok")
        with pytest.raises(EventChecksumError, match=r"run 'ok': event #2 \(\w+\) .* damaged"):
            await app.events("ok")
        assert (await app.list_runs())[0].status == "succeeded"  # the row is still readable
    with sqlite3.connect(path) as conn:  # bytes stored as written that still can't be decoded
        conn.execute(
            "UPDATE durable_events SET checksum = ? WHERE run_id = 'ok' AND seq = 2",
            (event_checksum("ok", 2, stored_type(conn, "ok", 2), b"\xc1\xff\xff"),),
        )
    async with app:
        with pytest.raises(CorruptEventError, match=r"run 'ok': event #2 is corrupted"):
            await app.get_run("ok")
        with pytest.raises(CorruptEventError, match=r"run 'ok': event #2 is corrupted"):
            await app.events("ok")
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute(
            "SELECT data FROM durable_events WHERE run_id = 'ok' AND seq = 2"
        ).fetchone()
    assert data == b"\xc1\xff\xff"  # nothing rewrote or dropped it


def stored_type(conn: sqlite3.Connection, run_id: str, seq: int) -> str:
    row = conn.execute(
        "SELECT type FROM durable_events WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()
    return str(row[0])


async def test_corrupted_unfinished_run_does_not_stop_the_worker(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    app = App(f"sqlite:///{path}", poll_interval=0.05, worker=False)

    @app.workflow()
    async def wf(ctx: Context, n: int) -> int:
        return n

    async with app:  # no worker: the runs stay pending
        await app.start(wf, 1, run_id="broken")
        await app.start(wf, 2, run_id="fine")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE durable_events SET data = X'00' WHERE run_id = 'broken'")
    worker_app = App(f"sqlite:///{path}", poll_interval=0.05)
    worker_app.workflow(wf)
    async with worker_app:
        assert await worker_app.handle("fine").result(timeout=10) == 2
        runs = {r.run_id: r.status for r in await worker_app.list_runs()}
    assert runs == {"broken": "pending", "fine": "succeeded"}
