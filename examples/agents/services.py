"""What the agent workflow document (seed 004) uses but leaves out: its tools and its agents.

The document's examples name tools and agents (`ToolStep("validate_order")`,
`AgentStep("inventory_agent")`) or use objects it never defines (`welcome_agent`,
`payment_tool`...). They are here, registered by name, so each example in this directory
runs as the document wrote it with only its imports changed.

The agents are Pydantic AI agents declared without a model, as the document declares them:
they get $DURABLE_AGENT_MODEL, which is "test" (Pydantic AI's offline TestModel) unless you
set it, e.g. DURABLE_AGENT_MODEL=openai:gpt-4o (with `pip install 'pydantic-ai-slim[openai]'`
and OPENAI_API_KEY).

For the tests, three environment variables shape the tools:
- DURABLE_EXAMPLE_EFFECTS: a file each tool call appends a JSON line to (its side effect);
- DURABLE_EXAMPLE_DELAY: "tool=seconds,..." makes those tools slow;
- DURABLE_EXAMPLE_FAIL: "tool,..." makes those tools fail (a down service).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from sdk.workflows import Agent, Tool, register_agent, register_tool

os.environ.setdefault("DURABLE_AGENT_MODEL", "test")
logger = logging.getLogger("examples.agents")


def _effect(tool: str, **args: Any) -> None:
    """A tool's side effect: noted in the effects file, after its (simulated) latency."""
    delays = dict(
        item.split("=") for item in os.environ.get("DURABLE_EXAMPLE_DELAY", "").split(",") if item
    )
    time.sleep(float(delays.get(tool, 0)))
    if tool in os.environ.get("DURABLE_EXAMPLE_FAIL", "").split(","):
        raise ConnectionRefusedError(f"{tool}: the service refused the connection")
    path = os.environ.get("DURABLE_EXAMPLE_EFFECTS")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"tool": tool, "args": args}) + "\n")


# -- the e-commerce example's tools, found by name -----------------------------------------


@register_tool
def validate_order(order_id: str) -> dict[str, Any]:
    _effect("validate_order", order_id=order_id)
    return {"order_valid": order_id.startswith("ORD-")}


@register_tool
def check_inventory(items: list[dict[str, Any]]) -> dict[str, Any]:
    _effect("check_inventory", items=items)
    return {"inventory_available": all(item["quantity"] <= 10 for item in items)}


@register_tool
def process_payment(amount: float, payment_method: str) -> dict[str, Any]:
    _effect("process_payment", amount=amount, payment_method=payment_method)
    return {"payment_successful": amount > 0, "transaction_id": f"txn-{amount:.2f}"}


@register_tool
def update_inventory(items: list[dict[str, Any]]) -> dict[str, Any]:
    _effect("update_inventory", items=items)
    return {"inventory_updated": len(items)}


@register_tool
def create_shipping_label(address: dict[str, str], items: list[dict[str, Any]]) -> dict[str, Any]:
    _effect("create_shipping_label", zip=address["zip"])
    return {"tracking_number": f"TRK-{address['zip']}-{len(items)}"}


@register_tool
def send_confirmation_email(customer_email: str, order_id: str) -> dict[str, Any]:
    _effect("send_confirmation_email", to=customer_email, order_id=order_id)
    return {"email_sent": True}


@register_tool
def update_crm(customer_id: str = "", order_value: float = 0.0) -> dict[str, Any]:
    _effect("update_crm", customer_id=customer_id, order_value=order_value)
    return {"crm_updated": True, "fulfillment_status": "fulfilled"}


register_agent(Agent(name="order_validation_agent", instructions="You handle invalid orders."))
register_agent(Agent(name="inventory_agent", instructions="You handle out-of-stock items."))
register_agent(Agent(name="fulfillment_agent", instructions="You complete order fulfilment."))


# -- the other examples' agents and tools --------------------------------------------------


def _agent(name: str, instructions: str) -> Any:
    return register_agent(Agent(name=name, instructions=instructions))


welcome_agent = _agent("welcome_agent", "You welcome new customers.")
high_value_agent = _agent("high_value_agent", "You review high-value transactions.")
manager_agent = _agent("manager_agent", "You assign account managers.")
review_agent = _agent("review_agent", "You review payments by hand.")
_agent("human_review", "You review processed data.")


def create_account(type: str) -> dict[str, Any]:
    _effect("create_account", type=type)
    return {"account_id": f"acct-{type}", "account_type": type}


def auto_approve(auto_approve: bool) -> dict[str, Any]:
    _effect("auto_approve", auto_approve=auto_approve)
    return {"approved": auto_approve}


def database_write(table: str) -> dict[str, Any]:
    _effect("database", table=table)
    return {"record_created": table}


def send_email(**fields: Any) -> dict[str, Any]:
    _effect("send_email", **fields)
    return {"email_sent": True}


def process_item(iteration: int, state: dict[str, Any]) -> dict[str, Any]:
    order = state["orders"][iteration]
    _effect("process_item", order=order)
    return {"last_processed": order}


def charge(amount: int = 0, retry: bool = False) -> dict[str, Any]:
    if not retry and "payment_gateway" in os.environ.get("DURABLE_EXAMPLE_FAIL", "").split(","):
        raise TimeoutError("the payment gateway did not answer in time (timeout)")
    _effect("process_payment", amount=amount, retry=retry)
    return {"charged": amount, "retried": retry}


email_tool = Tool(send_email, name="send_email", description="Send email to customer")
account_tool = Tool(create_account, name="create_account", description="Open an account")
auto_approve_tool = Tool(auto_approve, name="auto_approve", description="Approve at once")
database_tool = Tool(database_write, name="database", description="Create a record")
processing_tool = Tool(process_item, name="process_item", description="Process one order")
payment_tool = Tool(charge, name="payment", description="Charge the customer")


@register_tool
def create_user_account(
    state: dict[str, Any],
    user_id: str | None = None,
    email: str | None = None,
    upsert: bool = False,
) -> dict[str, Any]:
    # Without parameters (the document's `ToolStep("create_user_account")`), from the state.
    user_id = user_id or state["user_id"]
    email = email or state["email"]
    _effect("create_user_account", user_id=user_id, email=email, upsert=upsert)
    return {"account_created": user_id}


_KNOWN_USERS = {"u-existing"}


def user_exists(user_id: str) -> bool:
    return user_id in _KNOWN_USERS


@register_tool
def update_billing() -> dict[str, Any]:
    _effect("update_billing")
    return {"billing_updated": True}


@register_tool
def update_analytics() -> dict[str, Any]:
    _effect("update_analytics")
    return {"analytics_updated": True}


@register_tool
def quick_validation() -> dict[str, Any]:
    _effect("quick_validation")
    return {"valid": True}


@register_tool
def heavy_computation() -> dict[str, Any]:
    _effect("heavy_computation")
    return {"result": sum(i * i for i in range(10_000))}
