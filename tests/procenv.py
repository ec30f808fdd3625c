"""Worker processes for tests: `durable worker MODULE:app` subprocesses on one database, a
starter process, and the CLI, all sharing a workflows module written into the test's directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STARTER = """
import asyncio, os, sys
from sdk import App
import wfmod

async def main() -> None:
    async with App(os.environ["DURABLE_DATABASE_URL"], worker=False) as app:
        for key, wf in wfmod.app.registry._workflows.items():
            app.registry._workflows[key] = wf
        workflow = os.environ.get("START_WORKFLOW", "etl")
        for arg in sys.argv[1:]:
            run_id, n = arg.split("=")
            handle = await app.start(workflow, int(n), run_id=run_id)
            print(handle.run_id)

asyncio.run(main())
"""


class Env:
    def __init__(self, tmp_path: Path, workflows: str) -> None:
        self.dir = tmp_path
        (tmp_path / "wfmod.py").write_text(textwrap.dedent(workflows))
        (tmp_path / "starter.py").write_text(textwrap.dedent(STARTER))
        self.db = f"sqlite:///{tmp_path / 'runs.db'}"

    def env(self, versions: str) -> dict[str, str]:
        env = dict(os.environ)
        env["DURABLE_DATABASE_URL"] = self.db
        env["ETL_VERSIONS"] = versions  # which versions wfmod registers, e.g. "1,2"
        env["PYTHONPATH"] = os.pathsep.join([str(self.dir), env.get("PYTHONPATH", "")])
        return env

    def start(self, versions: str, *runs: str) -> None:
        done = subprocess.run(
            [sys.executable, "starter.py", *runs],
            cwd=self.dir,
            env=self.env(versions),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "durable", *args],
            cwd=self.dir,
            env=self.env(""),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def runs(self) -> dict[str, dict[str, Any]]:
        listed = self.cli("runs", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        return {r["run_id"]: r for r in json.loads(listed.stdout)}

    def events(self, run_id: str) -> list[dict[str, Any]]:
        shown = self.cli("events", run_id, "--json")
        assert shown.returncode == 0, shown.stderr
        found: list[dict[str, Any]] = json.loads(shown.stdout)
        return found

    def spawn(self, versions: str) -> subprocess.Popen[str]:
        log = open(self.dir / f"worker-{versions}.log", "a")  # noqa: SIM115
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "durable", "worker", "wfmod:app", "--log-level", "warning"],
                cwd=self.dir,
                env=self.env(versions),
                stdout=log,
                stderr=log,
                text=True,
            )
        finally:
            log.close()  # the child has its own descriptor

    @contextmanager
    def worker(self, versions: str) -> Iterator[subprocess.Popen[str]]:
        """A worker for the block, stopped with SIGTERM (a clean stop) at its end."""
        proc = self.spawn(versions)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def until(what: Callable[[], bool], timeout: float = 30.0, why: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {why}")
