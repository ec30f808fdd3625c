"""Durations are checked at the call: finite and >= 0, or a ValueError that says which one.

Also: a step attempt that outlives its timeout is failed whatever its body does afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from pathlib import Path

import pytest

from durable._durations import check_duration
from durable.dag import DagDefinitionError, load_definition
from sdk import App, Context, RetryPolicy, StepFailed

BAD = [math.nan, math.inf, -math.inf, -1.0]


def make_app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'wf.db'}", poll_interval=0.05)


@pytest.mark.parametrize("value", BAD)
def test_check_duration_names_the_argument_the_value_and_the_rule(value: float) -> None:
    with pytest.raises(ValueError, match="must be") as info:
        check_duration("ctx.sleep() seconds", value)
    message = str(info.value)
    assert "ctx.sleep() seconds" in message
    assert repr(value) in message
    assert "finite" in message and ">= 0" in message


def test_check_duration_accepts_zero_and_ints() -> None:
    assert check_duration("x", 0) == 0.0
    assert check_duration("x", 2) == 2.0
    with pytest.raises(ValueError, match="> 0"):
        check_duration("x", 0, positive=True)
    with pytest.raises(ValueError, match="True"):
        check_duration("x", True)


@pytest.mark.parametrize("value", BAD)
def test_step_timeout_is_checked_at_decoration(tmp_path: Path, value: float) -> None:
    app = make_app(tmp_path)
    with pytest.raises(ValueError, match=r"step 'slow'.*timeout.*finite"):

        @app.step(timeout=value)
        async def slow() -> None:
            pass


@pytest.mark.parametrize("field", ["initial_delay", "max_delay", "backoff"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_retry_policy_refuses_nan_and_infinity(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"RetryPolicy\.{field}.*{value!r}"):
        RetryPolicy(max_attempts=3, **{field: value})  # type: ignore[arg-type]


async def _fails_in_workflow(tmp_path: Path, call: str) -> str:
    """Run a workflow making `call` (caught in the workflow) and return the error it saw."""
    app = make_app(tmp_path)

    @app.workflow()
    async def wf(ctx: Context) -> str:
        try:
            if call == "sleep":
                await ctx.sleep(math.nan)
            elif call == "sleep_inf":
                await ctx.sleep(math.inf)
            elif call == "signal":
                await ctx.wait_for_signal("go", timeout=math.nan)
            elif call == "signal_inf":
                await ctx.wait_for_signal("go", timeout=math.inf)
            elif call == "sleep_until":
                await ctx.sleep_until(dt.datetime.max.replace(tzinfo=dt.UTC))
        except ValueError as exc:
            return str(exc)
        return "no error"

    async with app:
        return str(await app.run(wf, run_id="r", timeout=None))


@pytest.mark.parametrize(
    ("call", "named"),
    [
        ("sleep", "ctx.sleep() seconds"),
        ("sleep_inf", "ctx.sleep() seconds"),
        ("signal", "wait_for_signal() timeout"),
        ("signal_inf", "wait_for_signal() timeout"),
    ],
)
async def test_workflow_waits_refuse_nan_and_infinity(
    tmp_path: Path, call: str, named: str
) -> None:
    message = await asyncio.wait_for(_fails_in_workflow(tmp_path, call), 20)
    assert named in message and "finite" in message


@pytest.mark.parametrize("value", BAD)
async def test_start_run_and_result_timeouts_are_checked(tmp_path: Path, value: float) -> None:
    app = make_app(tmp_path)

    @app.workflow()
    async def wf(ctx: Context) -> str:
        return "done"

    async with app:
        with pytest.raises(ValueError, match=r"timeout.*finite"):
            await app.start(wf, run_id="a", timeout=value)
        with pytest.raises(ValueError, match=r"timeout.*finite"):
            await app.run(wf, run_id="b", timeout=value)
        handle = await app.start(wf, run_id="c")
        with pytest.raises(ValueError, match=r"timeout.*finite"):
            await handle.result(timeout=value)
        assert await handle.result(timeout=10) == "done"
        # Nothing was left behind by the refused calls.
        assert [r.run_id for r in await app.list_runs()] == ["c"]


async def test_timed_out_async_step_that_swallows_cancellation_is_failed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    tries = 0

    @app.step(retry=RetryPolicy(max_attempts=2, initial_delay=0.01), timeout=0.2)
    async def stubborn() -> str:
        nonlocal tries
        tries += 1
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    @app.workflow()
    async def wf(ctx: Context) -> str:
        try:
            return await stubborn()
        except StepFailed as exc:
            return exc.error.type

    async with app:
        assert await app.run(wf, run_id="r") == "durable.StepTimeoutError"
        info = await app.get_run("r")
    assert tries == 2
    assert info.steps[0].status == "failed"
    assert info.steps[0].attempts == 2
    assert info.steps[0].error is not None
    assert "timed out after 0.2s" in info.steps[0].error.message


async def test_timed_out_step_that_raises_something_else_is_a_timeout(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step(timeout=0.2)
    async def converts() -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None
        return "slept"

    @app.workflow()
    async def wf(ctx: Context) -> str:
        try:
            return await converts()
        except StepFailed as exc:
            return exc.error.type

    async with app:
        assert await app.run(wf, run_id="r") == "durable.StepTimeoutError"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_dag_delay_duration_refuses_nan_and_infinity(tmp_path: Path, value: str) -> None:
    path = tmp_path / "delay.yaml"
    path.write_text(
        f"name: d\ntasks:\n  wait:\n    action: delay\n    params:\n      duration: {value}\n"
    )
    with pytest.raises(DagDefinitionError, match=r"params\.duration must be .*finite"):
        load_definition(path)


@pytest.mark.parametrize("value", [".nan", ".inf"])
def test_dag_step_timeout_refuses_nan_and_infinity(tmp_path: Path, value: str) -> None:
    path = tmp_path / "timeout.yaml"
    path.write_text(f"name: t\ntasks:\n  a:\n    script: echo a\n    timeout_minutes: {value}\n")
    with pytest.raises(
        DagDefinitionError,
        match=r"step 'a': timeout must be a finite number|> 0.0 \(at \$\.tasks\.a\.timeout_minutes",
    ):
        load_definition(path)
