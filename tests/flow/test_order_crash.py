"""The document's complete order-processing example (seed 004) survives a SIGKILL in its
parallel fulfilment step, and honours "continue on partial failure, at least 3 of 4".

The example runs as a user runs it (`python examples/agents/run_document.py
document/order_processing.py`, its tools noting their side effects in a file). One branch of
the fulfilment is slow; once the three others have finished, and are recorded, the process
is killed with SIGKILL. Running the same command again resumes run "order_12345" (its
WorkflowContext's workflow_id) from its log once the dead process's lease expires: no tool
whose result was recorded runs again, the slow branch runs, and the order completes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from flow_document import effects, run, start

from durable import events as ev
from sdk import App, RunNotFoundError

BRANCHES = ["update_inventory", "create_shipping_label", "send_confirmation_email", "update_crm"]


def _completed_steps(db: Path) -> list[str]:
    """Names of the steps whose completion run order_12345's log holds."""
    return asyncio.run(_read(db)) if db.exists() else []


async def _read(db: Path) -> list[str]:
    async with App(f"sqlite:///{db}", worker=False) as app:
        try:
            events = await app.events("order_12345")
        except RunNotFoundError:
            return []
    names: dict[int, str] = {}
    done: list[str] = []
    for logged in events:
        event = logged.event
        if isinstance(event, ev.StepStarted):
            names[event.pos] = event.name
        elif isinstance(event, ev.StepCompleted):
            done.append(names[event.pos])
    return done


def test_the_order_survives_a_sigkill_in_its_parallel_fulfilment(tmp_path: Path) -> None:
    db = tmp_path / "examples.db"
    proc = start(tmp_path, "order_processing", DURABLE_EXAMPLE_DELAY="update_crm=60")
    try:
        deadline = time.monotonic() + 60
        fast = set(BRANCHES) - {"update_crm"}
        while not fast <= set(_completed_steps(db)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, _completed_steps(db)
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # update_crm is mid-call: nothing of it recorded
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    before = [e["tool"] for e in effects(tmp_path)]
    assert "update_crm" not in before
    assert sorted(before) == sorted(["validate_order", "check_inventory", "process_payment", *fast])

    out = run(tmp_path, "order_processing", timeout=120)  # the same run, resumed

    assert "Workflow completed with status: completed" in out, out
    assert "Steps completed: 5/5" in out, out
    tools = [e["tool"] for e in effects(tmp_path)]
    assert tools[: len(before)] == before
    assert tools[len(before) :] == ["update_crm"]  # only what was not recorded ran again
    done = _completed_steps(db)
    for name in ["validate_order", "check_inventory", "process_payment", *BRANCHES]:
        assert done.count(name) == 1, (name, done)
    assert done.count("fulfillment_agent.model_request") == 1


def test_three_of_four_fulfilment_branches_are_enough(tmp_path: Path) -> None:
    out = run(tmp_path, "order_processing", DURABLE_EXAMPLE_FAIL="send_confirmation_email")
    assert "Workflow completed with status: completed" in out, out
    assert "Steps completed: 5/5" in out, out
    tools = [e["tool"] for e in effects(tmp_path)]
    assert "send_confirmation_email" not in tools
    assert {"update_inventory", "create_shipping_label", "update_crm"} <= set(tools)


def test_two_failed_fulfilment_branches_fail_the_order(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "order_processing",
        DURABLE_EXAMPLE_FAIL="send_confirmation_email,update_crm",
    )
    assert "Workflow completed with status: failed" in out, out
    assert "2 of 4 branches failed" in out, out
    assert "Steps completed: 3/5" in out, out
    assert "fulfillment_agent" not in [e["tool"] for e in effects(tmp_path)]
