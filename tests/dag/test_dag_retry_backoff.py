"""A YAML step's retry_backoff (linear, exponential, fixed) and max_retry_delay_ms, through a
real run: each failed attempt's recorded next_attempt_at is its time plus the exact delay."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from durable import events as ev
from durable.dag import parse_definition
from sdk import App

pytestmark = pytest.mark.asyncio

# Four retries each: the delays after failed attempts 1..4, in seconds.
EXPECTED = {
    "lin": [0.03, 0.06, 0.09, 0.1],  # 30 ms x1, x2, x3, then x4 = 120 capped at 100
    "exp": [0.02, 0.04, 0.08, 0.1],  # doubling, 160 capped at 100
    "flat": [0.03, 0.03, 0.03, 0.03],
}

DAG = """
name: backoffs
tasks:
  lin:
    script: "exit 1"
    retries: 4
    retry_backoff: linear
    retry_delay_ms: 30
    max_retry_delay_ms: 100
  exp:
    script: "exit 1"
    retries: 4
    retry_backoff: exponential
    retry_delay_ms: 20
    max_retry_delay_ms: 100
  flat:
    script: "exit 1"
    retries: 4
    retry_backoff: fixed
    retry_delay_ms: 30
    max_retry_delay_ms: 100
"""


async def test_each_backoff_kind_records_its_exact_delays(tmp_path: Path) -> None:
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    definition = parse_definition(textwrap.dedent(DAG), str(tmp_path / "wf.yaml"))
    async with app:
        result = await app.run_dag(app.register_dag(definition), timeout=120)
        records = await app.events(result.run_id)
    assert {sid: (r.status, r.attempts) for sid, r in result.steps.items()} == {
        sid: ("failed", 5) for sid in EXPECTED
    }
    names = {r.event.pos: r.event.name for r in records if isinstance(r.event, ev.StepStarted)}
    recorded: dict[str, list[float]] = {sid: [] for sid in EXPECTED}
    last: dict[str, ev.StepFailed] = {}
    for record in records:
        event = record.event
        if isinstance(event, ev.StepFailed):
            last[names[event.pos]] = event
            if event.next_attempt_at is not None:
                recorded[names[event.pos]].append(event.next_attempt_at - record.at)
    for sid, delays in EXPECTED.items():
        # Both times are read from the clock together when the failure is recorded.
        assert recorded[sid] == pytest.approx(delays, abs=0.005), sid
        assert last[sid].attempt == 5 and last[sid].next_attempt_at is None
