"""A JavaScript step's own timeout_minutes is its evaluation's timeout (not the 30 s default
for steps without one): the endless loop below is stopped after 1.2 s, and says so."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from durable.dag import parse_definition
from sdk import App

pytestmark = pytest.mark.asyncio

DAG = """
name: js_timeout
tasks:
  warm: {code: "return 1;"}
  spin:
    code: "while (true) {}"
    timeout_minutes: 0.02
    depends_on: [warm]
"""


async def test_a_javascript_step_times_out_after_its_timeout_minutes(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        name = app.register_dag(parse_definition(DAG, str(tmp_path / "wf.yaml")))
        started = time.monotonic()
        result = await app.run_dag(name, timeout=120)
        elapsed = time.monotonic() - started
    spin = result.steps["spin"]
    assert spin.status == "failed" and spin.attempts == 1
    assert spin.error is not None
    assert "JavaScript evaluation timed out after 1.2s; sandbox killed" in spin.error, spin.error
    # The step's own span: the timeout plus the kill, below three times it (not the 30 s default).
    assert spin.duration_seconds is not None and 1.2 - 0.02 <= spin.duration_seconds < 3.6
    assert elapsed < 15.0  # the whole run, sandbox start-up included
