"""Replaying DAG runs: every recorded decision is one the definition's scheduler makes; a
changed definition is reported at the first event it cannot explain."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from durable._replay import replay
from durable.dag import DagProgram, parse_definition
from durable.runtime._registry import Registry
from sdk import App

pytestmark = pytest.mark.asyncio

FLOW = """
name: replayed
tasks:
  a: {script: "echo a"}
  bad: {script: "exit 1"}
  check:
    action: condition
    params: {expression: "context.big", then: [big], else: [small]}
    depends_on: [a]
  big: {script: "echo big", depends_on: [check]}
  small: {script: "echo small", depends_on: [check]}
  loop:
    code: "return ctx.iteration;"
    loop: {until: "result >= 2", max_iterations: 5}
  fan:
    matrix: {n: [1, 2, 3]}
    parallelism: 2
    script: "echo $N"
    environment: {N: "{{ matrix.n }}"}
    depends_on: [loop]
  after_bad: {script: "echo no", depends_on: [bad]}
  always: {script: "echo yes", depends_on: [bad, fan], run_always: true}
  gated: {script: "echo g", depends_on: [a], skip_if: "a.result.stdout.trim() === 'a'"}
"""


async def test_dag_runs_replay_as_deterministic_and_changes_are_caught(tmp_path: Path) -> None:
    definition = parse_definition(textwrap.dedent(FLOW), str(tmp_path / "flow.yaml"))
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        name = app.register_dag(definition)
        runs = [await app.run_dag(name, {"big": big}, timeout=60) for big in (True, False)]
        histories = [await app.events(r.run_id) for r in runs]
    assert [r.status for r in runs] == ["partial", "partial"]
    assert runs[0].steps["small"].status == "skipped" and runs[1].steps["big"].status == "skipped"
    for run, events in zip(runs, histories, strict=True):
        report = await replay(run.run_id, events, app.registry)
        assert report.deterministic, report.divergence
        assert report.status == "partial"

    # The same name and version, but `fan` no longer waits for the loop: the log's start of
    # `fan` after the loop is fine, but `always` now also depends on `big`, which was skipped
    # in the second run... make a change the log contradicts: `after_bad` runs always.
    changed = textwrap.dedent(FLOW).replace(
        'after_bad: {script: "echo no", depends_on: [bad]}',
        'after_bad: {script: "echo no", depends_on: [bad], run_always: true}',
    )
    other = Registry()
    other.add_dag(DagProgram(parse_definition(changed, str(tmp_path / "flow.yaml"))))
    report = await replay(runs[0].run_id, histories[0], other)
    assert not report.deterministic
    assert report.divergence is not None
    skip = next(e for e in histories[0] if e.type == "StepSkipped" and "after_bad" in str(e.event))
    assert report.divergence.position == skip.seq
    assert "after_bad" in report.divergence.message
    assert "does not skip it" in report.divergence.message

    # A step the definition no longer has.
    renamed = textwrap.dedent(FLOW).replace("  gated:", "  gate2:")
    third = Registry()
    third.add_dag(DagProgram(parse_definition(renamed, str(tmp_path / "flow.yaml"))))
    report = await replay(runs[0].run_id, histories[0], third)
    assert report.divergence is not None
    assert "'gated' is not in the definition" in report.divergence.message
