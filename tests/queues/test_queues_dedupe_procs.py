"""Dedupe across processes (SQLite, PostgreSQL): two processes start runs with the same dedupe
keys at the same instant; for each key exactly one run exists, and the other process got
DuplicateRunError naming that run. Each process goes through the keys from its own end, so
that each wins some: the keys where they meet are started by both at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from qprocs import Workload, url_for, workload

KEYS = 20
STARTER = """
import asyncio, json, os, sys, time
from sdk import App, DuplicateRunError
import wfmod

async def one(app, who, k):
    try:
        handle = await app.start(
            "job", f"{who}{k}", queue="once", dedupe_key=f"order-{k}", run_id=f"{who}-{k}"
        )
        return ["created", handle.run_id]
    except DuplicateRunError as exc:
        return ["duplicate", exc.existing_run_id, str(exc)]

async def main():
    who, go_at, keys = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    app = App(os.environ["DURABLE_DATABASE_URL"], worker=False)
    app.registry._workflows.update(wfmod.app.registry._workflows)
    app.registry.queues.update(wfmod.app.registry.queues)
    async with app:
        late = time.time() - go_at
        await asyncio.sleep(max(0.0, -late))
        # One start at a time, x from the first key up and y from the last down: they meet
        # in the middle, where both start the same key at the same moment.
        order = range(keys) if who == "x" else range(keys - 1, -1, -1)
        # (A pause between starts: SQLite's busy wait is not fair, and a process writing
        # without a break can hold the other off until it has started every key.)
        results = {}
        for k in order:
            results[k] = await one(app, who, k)
            await asyncio.sleep(0.02)
    print(json.dumps({"late": late, "results": [results[k] for k in range(keys)]}))

asyncio.run(main())
"""


async def stored_runs(work: Workload) -> list[str]:
    async with work.app() as app:
        return sorted(r.run_id for r in await app.list_runs(workflow="job", limit=100))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_starting_one_key_make_one_run(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(backend, tmp_path, request)
    with workload(tmp_path, 'app.queue("once")', url) as work:
        (tmp_path / "dedupe_starter.py").write_text(textwrap.dedent(STARTER))
        go_at = time.time() + 4.0  # both have opened their app by then (unless very loaded)
        procs = [
            subprocess.Popen(
                [sys.executable, "dedupe_starter.py", who, str(go_at), str(KEYS)],
                cwd=tmp_path,
                env=work.env.env(""),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for who in ("x", "y")
        ]
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out))
        runs = asyncio.run(stored_runs(work))
    x, y = (o["results"] for o in outputs)
    won = {"x": 0, "y": 0}
    for k in range(KEYS):
        created = [r for r in (x[k], y[k]) if r[0] == "created"]
        refused = [r for r in (x[k], y[k]) if r[0] == "duplicate"]
        assert len(created) == 1 and len(refused) == 1, (k, x[k], y[k])
        winner = created[0][1]
        assert refused[0][1] == winner  # DuplicateRunError names the run that has the key
        assert winner in refused[0][2] and f"order-{k}" in refused[0][2]
        won[winner[0]] += 1
    assert len(runs) == KEYS and all(r[0] in "xy" for r in runs)
    assert won["x"] and won["y"], "the processes did not meet (one started late)"
    print(
        f"\n{backend}: {KEYS} keys raced by two processes (late by "
        f"{outputs[0]['late']:+.2f}s, {outputs[1]['late']:+.2f}s): one run each; "
        f"process x won {won['x']}, y won {won['y']}"
    )
