"""Retry and fork of DAG runs: a partial run's failed step runs again and the dependents it
had skipped are decided again; a fork re-executes from a step; the DAG replay check accepts
both logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable import events as ev
from durable import replay
from sdk import App

pytestmark = pytest.mark.asyncio


def build(tmp_path: Path, calls: list[str], broken: set[str]) -> tuple[App, str]:
    async def work(label: str) -> str:
        calls.append(label)
        if label in broken:
            raise ValueError(f"{label} is broken")
        return label.upper()

    app = App(f"sqlite:///{tmp_path / 'runs.db'}", poll_interval=0.05)
    flow = app.dag("chain", api={"work": work})
    a = flow.js("a", "return await work('a');")
    b = flow.js("b", "return await work('b') + deps.a;", depends=[a])
    flow.js("c", "return await work('c') + deps.b;", depends=[b])
    flow.js("side", "return await work('side');")
    return app, app.register_dag(flow)


async def test_retrying_a_partial_dag_run_reruns_the_failed_step_and_its_skipped_dependents(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    broken = {"b"}
    app, name = build(tmp_path, calls, broken)
    async with app:
        first = await app.run_dag(name, None, run_id="r", timeout=60)
        assert first.status in ("partial", "failed")
        assert first.steps["c"].status == "skipped"
        broken.clear()
        await (await app.retry("r")).result(60)
        result = await app.dag_result("r")
        events = await app.events("r")
        report = await replay("r", events, app.registry)
    assert result.status == "succeeded", result.error
    assert result.steps["c"].result == "CBA"
    assert sorted(calls) == sorted(["a", "side", "b", "b", "c"])  # a and side ran once
    assert report.deterministic, report.divergence
    resumed = next(e.event for e in events if isinstance(e.event, ev.RunResumed))
    assert len(resumed.retry) == 1 and len(resumed.forget) >= 1


async def test_a_dag_fork_from_a_step_reuses_what_ran_before_it(tmp_path: Path) -> None:
    calls: list[str] = []
    app, name = build(tmp_path, calls, set())
    async with app:
        source = await app.run_dag(name, None, run_id="src", timeout=60)
        assert source.status == "succeeded"
        calls.clear()
        await (await app.fork("src", "b", new_run_id="fork")).result(60)
        result = await app.dag_result("fork")
        report = await replay("fork", await app.events("fork"), app.registry)
    assert result.status == "succeeded" and result.steps["c"].result == "CBA"
    assert "a" not in calls and "b" in calls and "c" in calls
    assert report.deterministic, report.divergence
