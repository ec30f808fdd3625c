"""`durable retry` and `durable fork` as real `python -m durable` processes on a real SQLite
file; the runs they create or reopen are then executed by a worker of the application."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

APP = textwrap.dedent(
    """
    import os
    from sdk import App, Context, RetryPolicy

    app = App(os.environ["REPAIR_DB"], poll_interval=0.05)
    CALLS = []

    @app.step(retry=RetryPolicy(max_attempts=1))
    async def work(label: str) -> str:
        CALLS.append(label)
        if os.path.exists(os.environ["REPAIR_FLAG"]):
            raise ValueError(f"{label} is broken")
        return label.upper()

    @app.workflow(name="pair")
    async def pair(ctx: Context) -> str:
        return await work("first") + await work("second")
    """
)


def durable(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    env["REPAIR_DB"] = f"sqlite:///{tmp_path / 'runs.db'}"
    env["REPAIR_FLAG"] = str(tmp_path / "broken")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "durable", *args, "--db", env["REPAIR_DB"]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )


def load(tmp_path: Path) -> Any:
    os.environ["REPAIR_DB"] = f"sqlite:///{tmp_path / 'runs.db'}"
    os.environ["REPAIR_FLAG"] = str(tmp_path / "broken")
    sys.path.insert(0, str(tmp_path))
    sys.modules.pop("repair_app", None)
    import repair_app  # type: ignore[import-not-found]

    return repair_app


def test_retry_and_fork_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "repair_app.py").write_text(APP)
    (tmp_path / "broken").write_text("yes")
    mod = load(tmp_path)

    async def failing() -> str:
        async with mod.app as app:
            handle = await app.start("pair", run_id="r")
            try:
                await handle.result(20)
            except Exception as exc:
                return type(exc).__name__
            return "succeeded"

    assert asyncio.run(failing()) == "RunFailed"
    assert mod.CALLS == ["first"]
    (tmp_path / "broken").unlink()  # the fix

    retried = durable(tmp_path, "retry", "r")
    assert retried.returncode == 0, retried.stderr
    assert "run r resumed: retrying work (#0)" in retried.stdout
    again = durable(tmp_path, "retry", "r")
    assert again.returncode == 2 and "only a failed or cancelled run can be retried" in again.stderr

    async def finish() -> Any:
        async with mod.app as app:
            return await app.handle("r").result(20)

    assert asyncio.run(finish()) == "FIRSTSECOND"
    assert mod.CALLS == ["first", "first", "second"]

    forked = durable(tmp_path, "fork", "r", "--from-step", "1", "--app", "repair_app:app")
    assert forked.returncode == 0, forked.stderr
    assert forked.stdout.startswith("run ") and "forked from r at position 1 (pair@1)" in (
        forked.stdout
    )
    fork_id = forked.stdout.split()[1]
    shown = durable(tmp_path, "runs", "show", fork_id)
    assert "forked from" in shown.stdout and "re-executed from position 1 (work)" in shown.stdout
    assert asyncio.run(_result(mod, fork_id)) == "FIRSTSECOND"
    assert mod.CALLS == ["first", "first", "second", "second"]  # only `second` ran again

    shown = durable(tmp_path, "runs", "show", "r")
    assert "retried" in shown.stdout and "once" in shown.stdout
    bad = durable(tmp_path, "fork", "r", "--from-step", "nope", "--app", "repair_app:app")
    assert bad.returncode == 2 and "has no step 'nope'" in bad.stderr
    missing = durable(tmp_path, "retry", "ghost")
    assert missing.returncode == 2 and "ghost" in missing.stderr


async def _result(mod: Any, run_id: str) -> Any:
    async with mod.app as app:
        return await app.handle(run_id).result(20)


GATE = textwrap.dedent(
    """
    import os
    from sdk import App, Context

    app = App(os.environ["REPAIR_DB"], poll_interval=0.05)
    CALLS = []

    @app.step()
    async def work(label: str) -> str:
        CALLS.append(label)
        return label.upper()

    @app.workflow(name="gate")
    async def gate(ctx: Context) -> str:
        first = await work("first")
        return first + str(await ctx.wait_for_signal("go"))
    """
)


def test_retry_resumes_a_cancelled_run_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "repair_app.py").write_text(GATE)
    mod = load(tmp_path)

    async def cancelled() -> str:
        async with mod.app as app:
            handle = await app.start("gate", run_id="g")
            for _ in range(200):
                if mod.CALLS and (await app.get_run("g")).waiting_on:
                    break
                await asyncio.sleep(0.05)
            await app.cancel("g", "by mistake")
            try:
                await handle.result(20)
            except Exception as exc:
                return type(exc).__name__
            return "succeeded"

    assert asyncio.run(cancelled()) == "RunCancelled"
    retried = durable(tmp_path, "retry", "g")
    assert retried.returncode == 0, retried.stderr
    assert "run g resumed: waiting again at ctx.wait_for_signal('go') (#1)" in retried.stdout
    signalled = durable(tmp_path, "signal", "g", "go", "--data", "2")
    assert signalled.returncode == 0, signalled.stderr
    assert asyncio.run(_result(mod, "g")) == "FIRST2"
    assert mod.CALLS == ["first"]  # completed before the cancellation: not run again
