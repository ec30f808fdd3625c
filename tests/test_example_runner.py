"""Every DAG example runs as its documentation says: `python examples/dag/run_example.py FILE
--stub`, in a real process, with no input but the example's own (an example that needs an input
only the tests know is an example a user cannot run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dag"
DEFINITIONS = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.json")])


def test_the_examples_are_found() -> None:
    assert len(DEFINITIONS) >= 12
    assert EXAMPLES / "order_approval.json" in DEFINITIONS


@pytest.mark.parametrize("definition", DEFINITIONS, ids=[d.name for d in DEFINITIONS])
def test_each_example_runs_with_its_own_input(definition: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    for name in ("SLACK_WEBHOOK", "PAGERDUTY_EVENTS_URL", "PD_KEY"):
        env.pop(name, None)  # --stub points them at its own server
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_example.py"), str(definition), "--stub"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Status: succeeded" in done.stdout
