"""A script step's own CPU time and peak memory: measured on its process tree alone (wait4 on
the child), so scripts running side by side in one worker never count each other."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from durable.dag import ScriptResult, parse_definition, run_script
from sdk import App

pytestmark = pytest.mark.asyncio

MB = 1024  # max_rss_kb is in KiB

# Burns 0.3 s of CPU (process time counts from the interpreter's start, so its startup is in).
BURN = "import time\nwhile time.process_time() < 0.3:\n    pass\n"
# Touches ~100 MB (bytes * n writes every byte: the pages are really resident), then holds
# them a moment so an overlapping script is still running beside it.
ALLOC = "import time\ndata = b'x' * (100 * 1024 * 1024)\ntime.sleep(0.05)\n"


def figures(result: ScriptResult) -> tuple[float, int]:
    """(cpu_seconds, max_rss_kb), which a script that ended by itself always has."""
    assert result.cpu_seconds is not None and result.max_rss_kb is not None, result
    return result.cpu_seconds, result.max_rss_kb


def _runs_show(tmp_path: Path, run_id: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    shown = subprocess.run(
        [sys.executable, "-m", "durable", "runs", "show", run_id, "--db", db],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def _scripts(tmp_path: Path) -> tuple[str, str]:
    burn, alloc = tmp_path / "burn.py", tmp_path / "alloc.py"
    burn.write_text(BURN)
    alloc.write_text(ALLOC)
    return str(burn), str(alloc)


async def test_cpu_time_of_a_busy_script(tmp_path: Path) -> None:
    burn, _ = _scripts(tmp_path)
    result = await run_script(burn)
    cpu, rss = figures(result)
    assert result.exit_code == 0
    assert 0.29 <= cpu <= 0.5 and rss < 60 * MB, result


async def test_peak_memory_of_a_script_that_allocates(tmp_path: Path) -> None:
    _, alloc = _scripts(tmp_path)
    result = await run_script(alloc)
    cpu, rss = figures(result)
    assert result.exit_code == 0
    assert rss >= 100 * MB and cpu < 0.3, result


async def test_a_small_script_is_not_charged_with_the_workers_memory() -> None:
    # A process forked from the worker would carry the worker's resident size into its peak
    # (Linux keeps the high-water mark of the image it had before exec): this one 200 MB.
    ballast = b"x" * (200 * 1024 * 1024)
    result = await run_script("true")
    cpu, rss = figures(result)
    assert len(ballast) and rss < 20 * MB and cpu < 0.1, result


async def test_the_figures_cover_the_process_tree_the_shell_waited_for(tmp_path: Path) -> None:
    burn, alloc = _scripts(tmp_path)
    # Through /bin/sh (the first word is not a .py file): the work is in grandchildren.
    result = await run_script(f"{sys.executable} {burn} && {sys.executable} {alloc}")
    cpu, rss = figures(result)
    assert result.exit_code == 0
    assert 0.29 <= cpu <= 0.7 and rss >= 100 * MB, result


async def test_overlapping_scripts_do_not_count_each_other(tmp_path: Path) -> None:
    burn, alloc = _scripts(tmp_path)
    # The allocating script ends while the busy one still runs: a worker-wide measure
    # (RUSAGE_CHILDREN before and after) would give the busy script the other's 100 MB and
    # CPU, and the allocating one a share of the busy one's CPU.
    busy, big, small = await asyncio.gather(
        run_script(burn), run_script(alloc), run_script("sleep 0.2")
    )
    busy_cpu, busy_rss = figures(busy)
    big_cpu, big_rss = figures(big)
    small_cpu, small_rss = figures(small)
    assert 0.29 <= busy_cpu <= 0.5 and busy_rss < 60 * MB, busy
    assert big_rss >= 100 * MB and big_cpu < 0.3, big
    assert small_cpu < 0.1 and small_rss < 20 * MB, small


async def test_a_failing_or_timed_out_script_still_reports_its_figures(tmp_path: Path) -> None:
    burn, _ = _scripts(tmp_path)
    failed = await run_script(f"{sys.executable} {burn}; exit 3")
    assert failed.exit_code == 3 and figures(failed)[0] >= 0.29, failed
    timed_out = await run_script("sleep 30", timeout=0.2)
    assert timed_out.timed_out and figures(timed_out)[0] < 0.1, timed_out


async def test_a_script_killed_after_ignoring_sigterm_has_no_figures(tmp_path: Path) -> None:
    # The launcher is killed with it (the group's SIGKILL): nothing could report them.
    result = await run_script("trap '' TERM; sleep 30", timeout=0.2)
    assert result.timed_out and result.signal == 9
    assert result.cpu_seconds is None and result.max_rss_kb is None


async def test_a_cancelled_script_is_reaped(tmp_path: Path) -> None:
    task = asyncio.ensure_future(run_script("sleep 30"))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_dag_script_steps_record_cpu_and_peak_memory(tmp_path: Path) -> None:
    burn, alloc = _scripts(tmp_path)
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    text = f"""
    name: resources
    tasks:
      busy: {{script: "{burn}"}}
      big: {{script: "{alloc}"}}
      quick: {{script: "echo hi", depends_on: [busy, big]}}
    """
    definition = parse_definition(textwrap.dedent(text), str(tmp_path / "wf.yaml"))
    async with app:
        name = app.register_dag(definition)
        result = await app.run_dag(name, None, timeout=120)
        assert result.status == "succeeded"
        busy, big = result.steps["busy"].result, result.steps["big"].result
        assert isinstance(busy, dict) and isinstance(big, dict)
        assert set(busy) == {
            "exit_code",
            "stdout",
            "stderr",
            "duration_seconds",
            "cpu_seconds",
            "max_rss_kb",
        }
        assert 0.29 <= busy["cpu_seconds"] <= 0.5 and busy["max_rss_kb"] < 60 * MB
        assert big["max_rss_kb"] >= 100 * MB and big["cpu_seconds"] < 0.3
        assert isinstance(result.steps["quick"].result["cpu_seconds"], float)
        usage = await app.usage(result.run_id)
    # The run's totals: CPU summed over the three scripts, the largest peak.
    assert usage.usage is None and usage.max_rss_kb == big["max_rss_kb"]
    assert usage.cpu_seconds is not None
    assert busy["cpu_seconds"] + big["cpu_seconds"] < usage.cpu_seconds < 0.8
    assert [s.name for s in usage.steps] == ["busy", "big", "quick"]

    # `durable runs show`: the totals, and each script's figures on its line.
    out = _runs_show(tmp_path, result.run_id)
    assert f"cpu {usage.cpu_seconds:.2f}s, peak {big['max_rss_kb'] / 1024:.1f} MiB" in out, out
    assert "(3 script steps)" in out, out
    lines = {line.split()[1]: line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert f"cpu {busy['cpu_seconds']:.2f}s, peak" in lines["busy"], out
    assert f"peak {big['max_rss_kb'] / 1024:.1f} MiB" in lines["big"], out
