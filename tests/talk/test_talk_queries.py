"""ctx.on_query / app.query in one process: answered by a replay in the caller's process
(nothing written), on parked, executing and finished runs; a handler issuing any durable
command fails with a QueryError naming it; unknown names list the known ones; DAG runs are
refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable import QueryError, RunNotFoundError, UnknownQueryError
from durable.events import WaitStarted
from sdk import App, Context


def build(app: App, gate: asyncio.Event) -> None:
    @app.step()
    async def add(total: int, n: int) -> int:
        return total + n

    @app.step()
    async def blocked() -> str:
        await gate.wait()  # holds the run executing until the test opens the gate
        return "through"

    @app.workflow
    async def counter(ctx: Context) -> int:
        state: dict[str, Any] = {"total": 0, "phase": "adding"}
        holder: dict[str, Any] = {}

        def swallow() -> str:
            try:
                ctx.now()
            except QueryError:
                return "swallowed"
            return "no refusal"

        async def async_state(prefix: str) -> str:
            await asyncio.sleep(0)  # a plain await is fine
            return f"{prefix}{state['total']}"

        async def awaits_child() -> Any:
            return await holder["child"].result()

        ctx.on_query("state", lambda: dict(state))
        ctx.on_query("plus", lambda n, m=0: state["total"] + n + m)
        ctx.on_query("async", async_state)
        ctx.on_query("step", lambda: add(1, 2))
        ctx.on_query("sleep", lambda: ctx.sleep(1))
        ctx.on_query("event", lambda: ctx.set_event("k", 1))
        ctx.on_query("now", lambda: ctx.now())
        ctx.on_query("uuid", lambda: ctx.uuid4())
        ctx.on_query("patched", lambda: ctx.patched("fix-1"))
        ctx.on_query("signal", lambda: ctx.wait_for_signal("more"))
        ctx.on_query("child", lambda: ctx.start_child("noop"))
        ctx.on_query("child_result", awaits_child)
        ctx.on_query("swallow", swallow)
        ctx.on_query("boom", lambda: 1 / 0)
        for n in (1, 2, 3):
            state["total"] = await add(state["total"], n)
        holder["child"] = await ctx.start_child("noop")
        await holder["child"].result()  # its end recorded before the wait: then nothing moves
        state["phase"] = "waiting"
        await ctx.wait_for_signal("more")
        state["phase"] = "blocked"
        state["via"] = await blocked()
        state["phase"] = "done"
        return int(state["total"])

    @app.workflow
    async def noop(ctx: Context) -> str:
        return "ok"

    @app.workflow
    async def plain(ctx: Context) -> str:
        return "no handlers"

    @app.workflow
    async def stuck(ctx: Context) -> str:
        ctx.on_query("q", lambda: "never asked")
        await ctx.wait_for_signal("go")
        await gate.wait()  # not durable: a replay waits here for ever
        return "through"


@pytest.fixture
async def app() -> Any:
    gate = asyncio.Event()
    app = App("memory://", poll_interval=0.05)
    app.gate = gate  # type: ignore[attr-defined]
    build(app, gate)
    async with app:
        yield app


async def parked(app: App) -> str:
    """A counter run waiting for its signal, the wait recorded (its log no longer moves)."""
    handle = await app.start("counter")
    for _ in range(500):
        logged = await app.engine.client.events(handle.run_id)
        if any(isinstance(e.event, WaitStarted) for e in logged):
            return handle.run_id
        await asyncio.sleep(0.02)
    raise AssertionError("the run never reached its signal wait")


async def last_seq(app: App, run_id: str) -> int:
    record = await app.engine.client.store.get_run(run_id)
    assert record is not None
    return record.last_seq


async def test_a_parked_executing_and_finished_run_answer(app: App) -> None:
    run_id = await parked(app)
    assert await app.query(run_id, "state") == {"total": 6, "phase": "waiting"}
    assert await app.query(run_id, "plus", 10) == 16
    assert await app.query(run_id, "plus", 10, 5) == 21
    assert await app.query(run_id, "async", "total=") == "total=6"
    await app.signal(run_id, "more")
    for _ in range(200):  # the run is executing, stuck in its step
        if (await app.query(run_id, "state"))["phase"] == "blocked":
            break
        await asyncio.sleep(0.02)
    assert (await app.query(run_id, "state"))["phase"] == "blocked"
    app.gate.set()  # type: ignore[attr-defined]
    assert await app.handle(run_id).result(timeout=10) == 6
    assert await app.query(run_id, "state") == {"total": 6, "phase": "done", "via": "through"}


async def test_queries_write_nothing(app: App) -> None:
    run_id = await parked(app)
    before = await last_seq(app, run_id)
    events = len(await app.engine.client.events(run_id))
    for i in range(100):
        assert await app.query(run_id, "plus", i) == 6 + i
    assert await last_seq(app, run_id) == before
    assert len(await app.engine.client.events(run_id)) == events


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("step", "step 'add'"),
        ("sleep", "ctx.sleep()"),
        ("event", "ctx.set_event('k')"),
        ("now", "ctx.now()"),
        ("uuid", "ctx.uuid4()"),
        ("patched", "ctx.patched('fix-1')"),
        ("signal", "ctx.wait_for_signal('more')"),
        ("child", "ctx.start_child('noop')"),
        ("child_result", "the result of child run of 'noop'"),
        ("swallow", "ctx.now()"),
    ],
)
async def test_a_handler_issuing_a_durable_command_fails_naming_it(
    app: App, name: str, command: str
) -> None:
    run_id = await parked(app)
    before = await last_seq(app, run_id)
    with pytest.raises(QueryError) as info:
        await app.query(run_id, name)
    assert f"query handler {name!r} called {command}: query handlers are read-only" in str(
        info.value
    )
    assert await last_seq(app, run_id) == before


async def test_unknown_names_failing_handlers_unknown_runs_and_dag_runs(app: App) -> None:
    run_id = await parked(app)
    with pytest.raises(UnknownQueryError) as info:
        await app.query(run_id, "nope")
    assert "'async'" in str(info.value) and "'state'" in str(info.value)
    assert info.value.known[:2] == ["async", "boom"]
    with pytest.raises(QueryError, match="query handler 'boom' raised ZeroDivisionError"):
        await app.query(run_id, "boom")
    with pytest.raises(QueryError, match="raised TypeError"):
        await app.query(run_id, "plus")  # missing argument
    plain = await app.start("plain")
    await plain.result(timeout=10)
    with pytest.raises(UnknownQueryError, match=r"registered .*: none\)"):
        await app.query(plain.run_id, "state")
    with pytest.raises(RunNotFoundError):
        await app.query("no-such-run", "state")

    dags = App("memory://", worker=False)
    flow = dags.dag("flow")
    flow.js("one", "return 1")
    dags.register_dag(flow)
    async with dags:
        dag_run = await dags.start("flow")
        with pytest.raises(QueryError, match="is a DAG run"):
            await dags.query(dag_run.run_id, "state")


async def test_a_replay_that_never_reaches_the_end_of_its_log_times_out(app: App) -> None:
    handle = await app.start("stuck")
    await app.signal(handle.run_id, "go")
    for _ in range(500):  # the signal recorded: the replay goes past the wait
        logged = await app.engine.client.events(handle.run_id)
        if any(e.type == "WaitCompleted" for e in logged):
            break
        await asyncio.sleep(0.02)
    with pytest.raises(QueryError, match=r"did not reach the end of its log within 0\.3 s"):
        await app.query(handle.run_id, "q", timeout=0.3)
