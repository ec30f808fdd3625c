"""app.debounce across processes: a worker process that made a burst of calls is SIGKILLed
before the delay ends, and a `durable worker` started afterwards runs the burst's one run
with the last input, not before the delay after the last call (SQLite and PostgreSQL); caller
processes debouncing one key at once on PostgreSQL make one run, carrying the last call of
one of them (the last by commit order)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procenv import Env, until

WORKFLOWS = """
import os, time
from sdk import App, Context

app = App(poll_interval=0.1)


@app.workflow
async def note(ctx: Context, text: str) -> str:
    with open(os.environ["DEBOUNCE_EFFECTS"], "a") as out:
        out.write(f"{text} {time.time()} {os.getpid()}\\n")
    return text
"""

# argv: name, calls, delay, worker ("1": this process also runs a worker), hold ("1": stay
# alive after the calls until killed). Prints one JSON line: the run ids and call times.
CALLER = """
import asyncio, json, os, sys, time
from sdk import App
import wfmod

async def main() -> None:
    name, calls, delay, worker, hold = sys.argv[1:]
    app = App(os.environ["DURABLE_DATABASE_URL"], worker=worker == "1", poll_interval=0.1)
    app.registry._workflows.update(wfmod.app.registry._workflows)
    async with app:
        ids, befores = [], []
        for i in range(int(calls)):
            befores.append(time.time())
            handle = await app.debounce("note", "k", float(delay), f"{name}.{i}")
            ids.append(handle.run_id)
        print(json.dumps({"ids": ids, "befores": befores}), flush=True)
        if hold == "1":
            await asyncio.sleep(3600)

asyncio.run(main())
"""


def effects_of(path: Path) -> list[tuple[str, float, str]]:
    return [
        (t, float(at), pid) for t, at, pid in (x.split() for x in path.read_text().splitlines())
    ]


def caller(env: Env, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "caller.py", *args],
        cwd=env.dir,
        env=env.env(""),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def make_env(tmp_path: Path, url: str | None) -> tuple[Env, Path]:
    env = Env(tmp_path, WORKFLOWS)
    (tmp_path / "caller.py").write_text(CALLER)
    if url is not None:
        env.db = url
    effects = tmp_path / "effects.txt"
    effects.touch()
    return env, effects


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return None  # Env's own SQLite file


def test_the_burst_survives_its_caller_killed(
    tmp_path: Path, url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, effects = make_env(tmp_path, url)
    monkeypatch.setenv("DEBOUNCE_EFFECTS", str(effects))
    proc = caller(env, "a", "5", "3.0", "1", "1")  # a worker too, killed before it is due
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.time()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    made = json.loads(line)
    assert len(set(made["ids"])) == 1
    due = made["befores"][-1] + 3.0
    assert killed_at < due, "the caller lived past the delay: the test proves nothing"
    assert effects_of(effects) == []
    with env.worker(""):
        until(lambda: bool(effects.read_text()), 60, "the debounced run")
        time.sleep(0.5)  # a second start, if there were one, would show by now
    ((text, began, pid),) = effects_of(effects)
    assert text == "a.4" and began >= due
    assert pid != str(proc.pid)
    runs = env.runs()
    assert list(runs) == made["ids"][:1] and runs[made["ids"][0]]["status"] == "succeeded"


def test_caller_processes_at_once_make_one_run(
    tmp_path: Path, pg_fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, effects = make_env(tmp_path, pg_fresh_url)
    monkeypatch.setenv("DEBOUNCE_EFFECTS", str(effects))
    procs = [caller(env, f"p{n}", "10", "4.0", "0", "0") for n in range(4)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    made = [json.loads(out) for out, _ in outputs]
    ids = {i for m in made for i in m["ids"]}
    assert len(ids) == 1, ids
    with env.worker(""):
        until(lambda: bool(effects.read_text()), 60, "the debounced run")
        time.sleep(0.5)
    ((text, began, _),) = effects_of(effects)
    # The last commit is some process's last call (each process's calls are in order).
    assert text in {f"p{n}.9" for n in range(4)}
    assert began >= max(m["befores"][-1] for m in made) + 4.0 - 0.05
    assert list(env.runs()) == list(ids)
