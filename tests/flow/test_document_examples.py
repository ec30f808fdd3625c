"""Every example of the agent workflow document (seed 004) is in examples/agents/document/,
written as the document writes it with only its imports changed (checked here against the
document itself), and runs: a real process, a real SQLite file, the agents on Pydantic AI's
offline TestModel."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_document import EXAMPLES, document_blocks, document_part, effects, run

EXAMPLE_OF_BLOCK = [
    "workflow_definition",
    "workflow_execution",
    "agent_step",
    "tool_step",
    "conditional_step",
    "parallel_step",
    "loop_step",
    "error_handling",
    "state_management",
    "streaming",
    "idempotency",
    "partial_failures",
    "timeouts",
    "workflow_logging",
    "order_processing",
]
# The one change beyond imports: the document's placeholder for a tool's implementation.
FILLED_IN = {
    "tool_step": (
        "    function=send_email,  # ... tool implementation",
        "    # ... tool implementation",
    )
}


def test_every_block_of_the_document_has_its_example() -> None:
    assert len(document_blocks()) == len(EXAMPLE_OF_BLOCK)
    names = sorted(p.stem for p in (EXAMPLES / "document").glob("*.py"))
    assert names == sorted(EXAMPLE_OF_BLOCK)


@pytest.mark.parametrize(("index", "name"), list(enumerate(EXAMPLE_OF_BLOCK)))
def test_the_example_is_the_documents_code_with_only_imports_changed(index: int, name: str) -> None:
    code = document_part(EXAMPLES / "document" / f"{name}.py")
    if name in FILLED_IN:
        code = code.replace(*FILLED_IN[name])
    assert code.rstrip() == document_blocks()[index].rstrip()


EXPECTED = {
    "workflow_execution": [
        "Workflow Status: completed",
        "Steps Completed: 2",
        "Success Rate: 100.0%",
    ],
    "agent_step": ["priority high: completed, success", "priority low: completed, skipped"],
    "tool_step": ["completed: {'email_sent': True}"],
    "conditional_step": [
        "amount 5000: completed, ran ['approval', 'payment_check']",
        "amount 50: completed, ran ['auto_approve', 'payment_check']",
    ],
    "parallel_step": ["completed: ['assign_manager', 'create_record', 'send_email']"],
    "loop_step": ["completed: [{'last_processed': 'ORD-1'}, {'last_processed': 'ORD-2'}"],
    "error_handling": ["completed: process_payment success", "'by': 'retry_payment'", "timeout"],
    "state_management": [
        "Final variables: {'customer_tier': 'premium'",
        "'account_id': 'acct-standard'",
    ],
    "streaming": ["Step welcome: success", "Step create_account: success", "Execution time: "],
    "idempotency": [
        "u-new: upsert completed, create_if_not_exists success",
        "u-existing: upsert completed, create_if_not_exists skipped",
    ],
    "partial_failures": ["completed: success, 3 of 3 succeeded"],
    "timeouts": [
        "('quick_validation', 'success'), ('heavy_computation', 'success'), "
        "('human_review', 'success')"
    ],
    "workflow_logging": ["completed: 1/1 steps"],
    "order_processing": ["status: completed", "Steps completed: 5/5", "Order ORD-12345 processed"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_runs(tmp_path: Path, name: str) -> None:
    out = run(tmp_path, name)
    for expected in EXPECTED[name]:
        assert expected in out, out


def test_the_logging_example_runs_its_step_once(tmp_path: Path) -> None:
    out = run(tmp_path, "workflow_logging")
    assert "completed: 1/1 steps" in out
    assert [e["tool"] for e in effects(tmp_path)] == ["quick_validation"]


def test_running_an_example_again_replays_its_runs_without_running_a_tool_again(
    tmp_path: Path,
) -> None:
    first = run(tmp_path, "loop_step")
    done = effects(tmp_path)
    assert [e["tool"] for e in done] == ["process_item"] * 3
    assert run(tmp_path, "loop_step") == first  # the same run id: its recorded result
    assert effects(tmp_path) == done


def test_the_readme_shows_the_support_ticket_example_as_it_is() -> None:
    """The README's complete agent workflow example is the file tests/test_readme.py runs."""
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    assert (EXAMPLES / "support_ticket.py").read_text() in readme
