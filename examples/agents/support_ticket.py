"""A support ticket, triaged by an AI agent, handled durably:
`python examples/agents/support_ticket.py`.

Every step is recorded in ./support.db (or $DURABLE_DATABASE_URL): the tool calls, the agent's
model requests and its own tool calls, each branch decision. Kill the process at any point and
run it again: run "ticket-1" resumes from its log, nothing recorded runs again.

Offline by default: the agent's model is Pydantic AI's TestModel. To use a real model, set
DURABLE_AGENT_MODEL to its name (e.g. openai:gpt-4o) after
`pip install 'pydantic-ai-slim[openai]'`, with OPENAI_API_KEY set.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sdk import App
from sdk.workflows import (
    Agent,
    AgentStep,
    ConditionalStep,
    ParallelStep,
    ToolStep,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowEngine,
)

app = App(os.environ.get("DURABLE_DATABASE_URL", "sqlite:///support.db"))

triage = Agent(
    os.environ.get("DURABLE_AGENT_MODEL", "test"),
    name="triage",
    instructions="Classify the ticket as billing or technical, and say why in one sentence.",
)


@triage.tool_plain
def order_history(customer_id: str) -> list[str]:
    """The customer's recent orders."""
    return ["ORD-1001 (delivered)", "ORD-1002 (refunded)"]


def lookup_customer(customer_id: str) -> dict[str, Any]:
    return {"name": "Ada", "tier": "premium", "email": "ada@example.com"}


def page_on_call(customer_id: str) -> dict[str, Any]:
    return {"paged": "support-oncall"}


def send_email(to: str, subject: str) -> dict[str, Any]:
    return {"email_sent": to}


def update_crm(customer_id: str, note: str) -> dict[str, Any]:
    return {"crm_note": note[:40]}


workflow = (
    WorkflowBuilder("support_ticket", "Support ticket")
    .add_step(
        ToolStep("lookup_customer", lookup_customer)
        .with_params_function(lambda state: {"customer_id": state["customer_id"]})
        .with_retry(2)
    )
    .add_step(
        AgentStep("triage", triage)
        .with_input_function(lambda state: f"Ticket from {state['name']}: {state['text']}")
        .with_timeout(120)
    )
    .add_step(
        ConditionalStep("escalate")
        .condition(lambda state: state["tier"] == "premium")
        .if_true(
            ToolStep("page_on_call", page_on_call).with_params_function(
                lambda state: {"customer_id": state["customer_id"]}
            )
        )
    )
    .add_step(
        ParallelStep("notify")
        .add_branch(
            ToolStep("send_email", send_email).with_params_function(
                lambda state: {"to": state["email"], "subject": "We are on it"}
            )
        )
        .add_branch(
            ToolStep("update_crm", update_crm).with_params_function(
                lambda state: {"customer_id": state["customer_id"], "note": state["triage"]}
            )
        )
        .with_failure_policy("continue_on_partial_failure")
        .with_minimum_success_count(1)
    )
    .build()
)


async def main() -> None:
    async with app:
        engine = WorkflowEngine(app)
        context = WorkflowContext(
            workflow_id="ticket-1",
            initial_data={"customer_id": "C-42", "text": "I was charged twice for ORD-1002."},
        )
        async for step in engine.stream(workflow, context):  # each step as it finishes
            print(f"{step.step_id}: {step.status} in {step.execution_time_ms:.1f}ms")
        result = await engine.execute_workflow(workflow, context)  # the recorded outcome
        print(f"{result.status}: {result.steps_completed}/{result.total_steps} steps")
        print(f"triage said: {result.context['triage']}")
        cost = await app.usage("ticket-1")
        print(f"tokens: {cost.usage}")


if __name__ == "__main__":
    asyncio.run(main())
