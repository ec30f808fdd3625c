"""The jsrun document's DAG example (examples/dag/workflow_dag.py) prints its documented
result, runs fetch_a and fetch_b at the same time, and a second run with the same run id
re-runs nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec

EXAMPLE = Path(__file__).parent.parent / "examples" / "dag" / "workflow_dag.py"
RESULT = (
    "Result: {'sum': 150, 'count': 8, 'event': {'source_a': 'a', 'source_b': 'b', 'user_id': 123}}"
)


def _run(tmp_path: Path, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["DURABLE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dag.db'}"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_seed_example_prints_its_documented_result(tmp_path: Path) -> None:
    lines = _run(tmp_path, "seed-run")
    assert lines[-1] == RESULT
    steps = [line.strip() for line in lines[:-1]]
    expected = ["→ fetch_a", "→ fetch_b", "✓ fetch_a", "✓ fetch_b", "→ combine", "✓ combine"]
    assert sorted(steps) == sorted([*expected, "→ aggregate", "✓ aggregate"])
    # Both fetches start before either finishes (the document's parallelism), combine after
    # both, aggregate after combine.
    assert set(steps[:2]) == {"→ fetch_a", "→ fetch_b"}
    assert steps[4:] == ["→ combine", "✓ combine", "→ aggregate", "✓ aggregate"]

    # The log says the same with timestamps: the two fetch_data calls (0.1 s each) overlapped.
    with sqlite3.connect(tmp_path / "dag.db") as db:
        rows = db.execute(
            "SELECT type, data, created_at FROM durable_events WHERE run_id = 'seed-run' "
            "ORDER BY seq"
        ).fetchall()
    names: dict[int, str] = {}
    span: dict[str, list[float]] = {}
    for kind, data, at in rows:
        event = msgspec.msgpack.decode(data)
        if kind == "StepStarted":
            names[event["pos"]] = event["name"]
            span[event["name"]] = [at]
        elif kind == "StepCompleted":
            span[names[event["pos"]]].append(at)
    (a_start, a_end), (b_start, b_end) = span["fetch_a"], span["fetch_b"]
    assert a_start < b_end and b_start < a_end
    assert span["combine"][0] >= max(a_end, b_end)

    # The same run id again: the run is finished, nothing runs, the result is the recorded one.
    again = _run(tmp_path, "seed-run")
    assert again[-1] == RESULT
