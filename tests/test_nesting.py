"""Deeply nested values are refused with SerializationError (which value, nested too deep, the
limit) where they are given, before anything is written: never a bare RecursionError, and
never a value that a worker, deeper in its stack, could not decode again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from durable._limits import MAX_NESTING_DEPTH
from sdk import App, Context, RunFailed, SerializationError

pytestmark = pytest.mark.asyncio


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def depth_of(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    return depth


def make_app(tmp_path: Path) -> App:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")

    @app.workflow(name="echo")
    async def echo(ctx: Context, value: Any) -> int:
        return depth_of(value)

    @app.step()
    def measure(value: Any) -> int:
        return depth_of(value)

    @app.step()
    def deepen(depth: int) -> Any:
        return nested(depth)

    @app.workflow(name="argument")
    async def argument(ctx: Context, depth: int) -> str:
        try:
            await measure(nested(depth))
        except SerializationError as exc:
            return f"refused: {exc}"
        return "accepted"

    @app.workflow(name="result")
    async def result(ctx: Context, depth: int) -> int:
        return depth_of(await deepen(depth))

    return app


@pytest.mark.parametrize("depth", [10_000, MAX_NESTING_DEPTH + 1])
async def test_deep_workflow_input_is_refused_before_anything_is_written(
    tmp_path: Path, depth: int
) -> None:
    app = make_app(tmp_path)
    async with app:
        with pytest.raises(SerializationError) as caught:
            await app.start("echo", nested(depth), run_id="deep")
        assert await app.list_runs() == []
    message = str(caught.value)
    assert "the input of workflow 'echo'" in message
    assert f"nested more than {MAX_NESTING_DEPTH} levels deep" in message


async def test_input_at_the_limit_runs(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        handle = await app.start("echo", nested(MAX_NESTING_DEPTH))
        assert await handle.result(timeout=60) == MAX_NESTING_DEPTH


async def test_a_value_that_contains_itself_is_refused_clearly(tmp_path: Path) -> None:
    loop: list[Any] = []
    loop.append(loop)
    app = make_app(tmp_path)
    async with app:
        with pytest.raises(SerializationError, match="contains itself"):
            await app.start("echo", loop)


async def test_deep_step_arguments_are_refused_at_the_call(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        refused = await (await app.start("argument", 10_000)).result(timeout=60)
        accepted = await (await app.start("argument", MAX_NESTING_DEPTH)).result(timeout=60)
    assert refused.startswith("refused: the arguments of step 'measure'")
    assert f"more than {MAX_NESTING_DEPTH} levels" in refused
    assert accepted == "accepted"


async def test_a_deep_step_result_fails_the_step_clearly(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        with pytest.raises(RunFailed) as caught:
            await (await app.start("result", 10_000)).result(timeout=60)
        ok = await (await app.start("result", MAX_NESTING_DEPTH)).result(timeout=60)
    error = caught.value.error
    assert "SerializationError" in error.type or "SerializationError" in error.message
    assert "the result of step 'deepen'" in error.message
    assert f"nested more than {MAX_NESTING_DEPTH} levels deep" in error.message
    assert ok == MAX_NESTING_DEPTH


async def test_a_deep_signal_payload_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        handle = await app.start("echo", 1)
        await handle.result(timeout=60)
        with pytest.raises(SerializationError, match="the payload of signal 'go'"):
            await app.signal(handle.run_id, "go", nested(10_000))
