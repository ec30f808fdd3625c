"""Hostile JavaScript in DAG steps: each step fails with a clear error, the worker (this very
process) survives, and the steps after them still run in the sandbox pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durable.dag import parse_definition
from sdk import App

pytestmark = pytest.mark.asyncio

HOSTILE = {
    "endless_loop": ("while (true) {}", "timed out"),
    "array_bomb": (
        "const keep = []; while (true) { keep.push(new Array(1e6).fill(1.5)); }",
        "Heap limit exceeded",
    ),
    "typed_array_bomb": (
        "const keep = []; while (true) { keep.push(new Float64Array(5e7).fill(1)); }",
        "Array buffer allocation failed",
    ),
    "giant_string": ("let s = 'x'; while (true) { s = s + s; }", "Invalid string length"),
    "op_panic": ("__bootstrap.core.ops.op_panic('x');", "sandbox died"),
    # Over the pool's 8 MiB result limit, and over jsrun's own 10 MiB conversion limit.
    "big_result": ("return 'x'.repeat(9 * 1024 * 1024);", "ResultTooLarge"),
    "huge_result": ("return 'x'.repeat(20 * 1024 * 1024);", "exceeded maximum limit"),
    "throws": ("throw new TypeError('nope: bad input');", "TypeError: nope: bad input"),
}


async def test_hostile_steps_fail_cleanly_and_the_next_steps_run(tmp_path: Path) -> None:
    tasks = [
        f"  {name}:\n    code: {code!r}\n    timeout_minutes: 0.05\n"
        for name, (code, _) in HOSTILE.items()
    ]
    names = ", ".join(HOSTILE)
    text = (
        "name: hostile\ntasks:\n"
        + "".join(tasks)
        + f"  after_all:\n    code: 'return 6 * 7;'\n    depends_on: [{names}]\n"
        + "    run_always: true\n"
        + "  independent:\n    code: 'return [1, 2, 3].map(x => x * 2);'\n"
    )
    definition = parse_definition(text, str(tmp_path / "hostile.yaml"))
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    pid = os.getpid()
    async with app:
        name = app.register_dag(definition)
        result = await app.run_dag(name, timeout=300)
        # The same process ran every evaluation's parent side: it is alive and still works.
        again = await app.run_dag(name, timeout=300)
    assert os.getpid() == pid
    for outcome in (result, again):
        for step_id, (_, expected) in HOSTILE.items():
            report = outcome.steps[step_id]
            assert report.status == "failed", step_id
            assert report.error is not None and expected in report.error, (step_id, report.error)
        assert outcome.steps["after_all"].status == "succeeded"
        assert outcome.steps["after_all"].result == 42
        assert outcome.steps["independent"].result == [2, 4, 6]
        assert outcome.status == "partial"
    # A JavaScript throw comes back with V8's stack.
    thrown = result.steps["throws"]
    assert thrown.error is not None and "durable.js.JsError" in thrown.error
    assert thrown.details is not None
    assert (thrown.details["js_error"], thrown.details["js_message"]) == (
        "TypeError",
        "nope: bad input",
    )
    assert "at " in thrown.details["js_stack"]
