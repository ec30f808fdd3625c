"""Updates across processes (issue 17 §2.5, §2.6), on SQLite files and PostgreSQL: the run is
executed by `durable worker` subprocesses, the caller is another process. A worker SIGKILLed
after the update's acceptance is durable (its handler's step blocked on a file), or before
it (its validator blocked), is replaced by another: the caller gets the answer once, the log
holds one acceptance and one completion, the handler's step ended once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from procenv import Env, until

WORKFLOWS = """
import asyncio, os, time
from sdk import App, Context

app = App(poll_interval=0.1, lease_ttl=2.0)
EFFECTS = os.environ["UPDATE_EFFECTS"]


def mark(text: str) -> None:
    with open(EFFECTS, "a") as out:
        out.write(f"{text} {os.getpid()}\\n")


@app.step()
async def blocker(tag: str) -> str:
    mark(f"start {tag}")
    while not os.path.exists(os.environ["UPDATE_GATE"]):
        await asyncio.sleep(0.05)
    mark(f"end {tag}")
    return tag.upper()


@app.workflow
async def holder(ctx: Context) -> str:
    async def act(tag: str) -> str:
        return await blocker(tag) + "!"

    def check(tag: str) -> None:
        mark(f"validate {tag}")
        while os.path.exists(os.environ["UPDATE_HOLD"]):  # a test holds the worker here
            time.sleep(0.05)

    ctx.on_update("act", act, validator=check)
    await ctx.wait_for_signal("stop")
    return "done"
"""

CALLER = """
import asyncio, json, os, sys
from sdk import App

async def main() -> None:
    async with App(os.environ["DURABLE_DATABASE_URL"], worker=False, poll_interval=0.1) as app:
        try:
            got = await app.update(sys.argv[1], "act", sys.argv[2], update_id=sys.argv[3],
                                   timeout=90)
            print(json.dumps({"result": got}))
        except Exception as exc:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))

asyncio.run(main())
"""

# Update-with-start from a process of its own: argv run id, tag, update id.
WITH_START = """
import asyncio, json, os, sys
from sdk import App, Update

async def main() -> None:
    async with App(os.environ["DURABLE_DATABASE_URL"], worker=False, poll_interval=0.1) as app:
        import wfmod
        app.registry._workflows.update(wfmod.app.registry._workflows)
        got = await app.update_with_start(
            "holder", run_id=sys.argv[1], update=Update("act", (sys.argv[2],), sys.argv[3]),
            timeout=90,
        )
        print(json.dumps({"result": got}))

asyncio.run(main())
"""

START = """
import asyncio, os, sys
from sdk import App

async def main() -> None:
    async with App(os.environ["DURABLE_DATABASE_URL"], worker=False) as app:
        import wfmod
        app.registry._workflows.update(wfmod.app.registry._workflows)
        await app.start("holder", run_id=sys.argv[1])

asyncio.run(main())
"""


class Setup:
    def __init__(self, tmp_path: Path, url: str | None) -> None:
        self.env = Env(tmp_path, WORKFLOWS)
        if url is not None:
            self.env.db = url
        self.dir = tmp_path
        self.effects = tmp_path / "effects.txt"
        self.effects.touch()
        self.gate = tmp_path / "gate"
        self.hold = tmp_path / "hold"
        (tmp_path / "caller.py").write_text(CALLER)
        (tmp_path / "start.py").write_text(START)
        (tmp_path / "with_start.py").write_text(WITH_START)
        self.procs: list[subprocess.Popen[str]] = []

    def environ(self) -> dict[str, str]:
        env = self.env.env("")
        env["UPDATE_EFFECTS"] = str(self.effects)
        env["UPDATE_GATE"] = str(self.gate)
        env["UPDATE_HOLD"] = str(self.hold)
        return env

    def worker(self) -> subprocess.Popen[str]:
        log = open(self.dir / "worker.log", "a")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "durable", "worker", "wfmod:app", "--log-level", "info"],
                cwd=self.dir,
                env=self.environ(),
                stdout=log,
                stderr=log,
                text=True,
            )
        finally:
            log.close()
        self.procs.append(proc)
        return proc

    def run_script(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.dir,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    def caller(
        self, run_id: str, tag: str, update_id: str, script: str = "caller.py"
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, script, run_id, tag, update_id],
            cwd=self.dir,
            env=self.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def answer(self, proc: subprocess.Popen[str]) -> dict[str, Any]:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return found

    def marks(self) -> list[str]:
        return [" ".join(line.split()[:2]) for line in self.effects.read_text().splitlines()]

    def event_types(self, run_id: str) -> list[str]:
        return [e["type"] for e in self.env.events(run_id)]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def setup(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Setup]:
    url = request.getfixturevalue("pg_fresh_url") if backend == "postgres" else None
    made = Setup(tmp_path, url)
    try:
        yield made
    finally:
        made.stop()


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_caller_process_gets_the_answer_of_a_worker_process(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with setup(tmp_path, backend, request) as s:
        s.gate.touch()
        s.worker()
        s.run_script("start.py", "r1")
        first = s.caller("r1", "tea", "u-1")
        second = s.caller("r1", "tea", "u-1")  # the same update id: one run of the handler
        assert s.answer(first) == {"result": "TEA!"}
        assert s.answer(second) == {"result": "TEA!"}
        assert s.marks().count("end tea") == 1
        types = s.event_types("r1")
        assert types.count("UpdateAccepted") == 1 and types.count("UpdateCompleted") == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_worker_killed_after_the_acceptance(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with setup(tmp_path, backend, request) as s:
        victim = s.worker()
        s.run_script("start.py", "r1")
        caller = s.caller("r1", "jam", "u-kill")
        until(lambda: "start jam" in s.marks(), 60, "the handler's step to start")
        until(lambda: "UpdateAccepted" in s.event_types("r1"), 30, "the acceptance durable")
        kill(victim)
        s.worker()
        until(lambda: s.marks().count("start jam") == 2, 60, "the step re-run by the new worker")
        s.gate.touch()
        assert s.answer(caller) == {"result": "JAM!"}
        types = s.event_types("r1")
        assert types.count("UpdateAccepted") == 1 and types.count("UpdateCompleted") == 1
        assert s.marks().count("end jam") == 1
        assert s.marks().count("validate jam") == 1  # accepted once: never validated again


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_worker_killed_before_the_acceptance(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with setup(tmp_path, backend, request) as s:
        s.hold.touch()
        s.gate.touch()
        victim = s.worker()
        s.run_script("start.py", "r1")
        caller = s.caller("r1", "oat", "u-early")
        until(lambda: "validate oat" in s.marks(), 60, "the validator to run")
        kill(victim)  # held in the validator: nothing of the update is in the log
        assert "UpdateAccepted" not in s.event_types("r1")
        os.remove(s.hold)
        s.worker()
        assert s.answer(caller) == {"result": "OAT!"}
        types = s.event_types("r1")
        assert types.count("UpdateAccepted") == 1 and types.count("UpdateCompleted") == 1
        assert s.marks().count("validate oat") == 2 and s.marks().count("end oat") == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_update_with_start_one_run(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with setup(tmp_path, backend, request) as s:
        s.gate.touch()
        s.worker()
        first = s.caller("fresh", "rye", "w-1", script="with_start.py")
        second = s.caller("fresh", "oat", "w-2", script="with_start.py")
        assert s.answer(first) == {"result": "RYE!"}
        assert s.answer(second) == {"result": "OAT!"}
        assert list(s.env.runs()) == ["fresh"]
        types = s.event_types("fresh")
        assert types.count("RunStarted") == 1 and types.count("UpdateCompleted") == 2
