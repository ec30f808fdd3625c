"""Token usage per step and per run, read off the log of runs whose agents ran on Pydantic AI's
own FunctionModel and TestModel: `app.usage`, `app.get_run` and `durable runs show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent_helpers import MODEL_STEP, TOOL_STEP, make_app, weather_agent
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from durable._usage import RunUsage, StepUsage
from sdk import App, Context

REPO = Path(__file__).resolve().parents[2]
FIRST = {"requests": 1, "input_tokens": 11, "output_tokens": 5}
SECOND = {"requests": 1, "input_tokens": 20, "output_tokens": 7}
TOTAL = {"requests": 2, "input_tokens": 31, "output_tokens": 12}


async def _weather_run(app: App, run_id: str) -> None:
    support = app.agent(weather_agent([], []))

    @app.workflow()
    async def ask(ctx: Context, question: str) -> str:
        return (await support.run(question)).output

    await app.run(ask, "weather?", run_id=run_id)


async def test_a_runs_usage_sums_its_model_requests(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        await _weather_run(app, "u1")
        usage = await app.usage("u1")
        info = await app.get_run("u1")

    assert isinstance(usage, RunUsage)
    assert usage.run_id == "u1" and usage.usage == TOTAL
    assert usage.cpu_seconds is None and usage.max_rss_kb is None  # no script ran
    # The model requests, in order; the tool call has no tokens and is left out.
    assert usage.steps == [
        StepUsage(position=0, name=MODEL_STEP, usage=FIRST, model_name="weather-fn"),
        StepUsage(position=2, name=MODEL_STEP, usage=SECOND, model_name="weather-fn"),
    ]
    # The run as get_run shows it carries the same figures, run and steps.
    assert info.usage == TOTAL
    assert [(s.name, s.usage) for s in info.steps] == [
        (MODEL_STEP, FIRST),
        (TOOL_STEP, None),
        (MODEL_STEP, SECOND),
    ]


async def test_the_totals_are_pydantic_ais_own_count(tmp_path: Path) -> None:
    """TestModel reports a usage of its own making; the run's total is what the agent run
    itself counted, over two agent runs in one workflow."""
    app = make_app(tmp_path)
    agent: Agent[None, str] = Agent(TestModel(), name="helper")

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        return a + b

    helper = app.agent(agent)

    @app.workflow()
    async def work(ctx: Context) -> dict[str, int]:
        counted: dict[str, int] = {}
        for prompt in ("add some numbers", "and again, with more words this time"):
            usage = (await helper.run(prompt)).usage
            for key in ("requests", "input_tokens", "output_tokens"):
                counted[key] = counted.get(key, 0) + getattr(usage, key)
        return counted

    async with app:
        counted = await app.run(work, run_id="t1")
        usage = await app.usage("t1")

    assert counted["requests"] == 4 and counted["input_tokens"] > 0
    assert usage.usage is not None
    assert {k: usage.usage[k] for k in counted} == counted
    assert [s.name for s in usage.steps] == ["helper.model_request"] * 4


async def test_a_run_without_model_requests_has_no_usage(tmp_path: Path) -> None:
    app = make_app(tmp_path)

    @app.step()
    async def fake(x: int) -> dict[str, Any]:
        # Looks like token counts, but no model request recorded it (no envelope).
        return {"usage": {"requests": 1, "input_tokens": 9}}

    @app.workflow()
    async def plain(ctx: Context) -> int:
        await fake(1)
        return 1

    async with app:
        await app.run(plain, run_id="p1")
        usage = await app.usage("p1")
        info = await app.get_run("p1")
    assert usage.usage is None and usage.steps == []
    assert info.usage is None and info.steps[0].usage is None


def _cli(tmp_path: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "durable", *args, "--db", f"sqlite:///{tmp_path / 'agents.db'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


async def test_runs_show_prints_the_totals_and_each_model_requests_tokens(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        await _weather_run(app, "u2")

    out = _cli(tmp_path, "runs", "show", "u2")
    assert "usage" in out and "2 model requests, 43 tokens (31 input, 12 output)" in out, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert "16 tokens (11 in, 5 out)" in lines["0"], out
    assert "27 tokens (20 in, 7 out)" in lines["2"], out
    assert "tokens" not in lines["1"], out  # the tool call

    shown = json.loads(_cli(tmp_path, "runs", "show", "u2", "--json"))
    assert shown["usage"] == TOTAL
    assert [s["usage"] for s in shown["steps"]] == [FIRST, None, SECOND]


def test_reading_usage_does_not_need_the_agents_extra() -> None:
    """The view and `durable runs show` work without Pydantic AI: nothing imports it."""
    code = (
        "import sys, durable._usage, durable.cli._runs, durable.api._shapes\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'pydantic_ai']\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
