"""The tools and agents of the e-commerce order example (seed 004), as DAG actions.

`ACTIONS` are registered with `app.register_action` (each is `fn(params, context)`);
`FUNCTIONS` are callable from the definition's JavaScript steps (the update_inventory loop).
The agents are stand-ins for 004's LLM agents: they answer with a fixed, readable reply.

A run input `simulate_failures: [step ids]` makes those steps fail, to watch the partial
failure policy, the error handler and the branches at work. Everything is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

STOCK = {"ITEM-001": 10, "ITEM-002": 3}  # units on hand, by SKU


class ToolError(Exception):
    """A tool could not do its job."""


def _check_simulated(context: Mapping[str, Any]) -> None:
    run_input = context.get("input") or {}
    if context["step"] in run_input.get("simulate_failures", []):
        raise ToolError(f"{context['step']}: service unavailable (simulated)")


def validate_order(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _check_simulated(context)
    items = params.get("items") or []
    problems = [i.get("sku", "?") for i in items if i.get("quantity", 0) <= 0]
    valid = bool(params.get("order_id")) and bool(items) and not problems
    return {"order_id": params.get("order_id"), "order_valid": valid, "problems": problems}


def check_inventory(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _check_simulated(context)
    short = [
        i["sku"] for i in params["items"] if STOCK.get(i["sku"], 0) < int(i.get("quantity", 0))
    ]
    return {"inventory_available": not short, "out_of_stock": short}


def process_payment(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _check_simulated(context)
    amount = round(float(params["amount"]), 2)
    return {
        "payment_successful": True,
        "amount": amount,
        "method": params["payment_method"],
        # Deterministic, and the same on a retry: the run's idempotency key names the charge.
        "transaction_id": f"txn-{context['idempotency_key']}",
    }


def create_shipping_label(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _check_simulated(context)
    address = params["address"]
    parcels = sum(int(i["quantity"]) for i in params["items"])
    return {"label": f"LBL-{address['zip']}-{parcels}", "carrier": "UPS", "parcels": parcels}


def send_confirmation_email(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _check_simulated(context)
    return {"sent_to": params["customer_email"], "template": "order_confirmation"}


def update_crm(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _check_simulated(context)
    return {"customer_id": params["customer_id"], "lifetime_value_added": params["order_value"]}


def agent(params: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for an agent step: it acknowledges its task."""
    _check_simulated(context)
    name, message = params["agent"], params["message"]
    return {"agent": name, "reply": f"{name}: done: {message}", "context": params.get("context")}


def update_stock(sku: str, quantity: int, iteration: int, failing: list[str]) -> dict[str, Any]:
    """One iteration of the update_inventory loop: take `quantity` units of `sku`."""
    if "update_inventory" in failing:
        raise ToolError("update_inventory: inventory database unavailable (simulated)")
    return {"iteration": iteration, "sku": sku, "remaining": STOCK[sku] - quantity}


ACTIONS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "validate_order": validate_order,
    "check_inventory": check_inventory,
    "process_payment": process_payment,
    "create_shipping_label": create_shipping_label,
    "send_confirmation_email": send_confirmation_email,
    "update_crm": update_crm,
    "agent": agent,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {"update_stock": update_stock}

# 004's example context: the run input when none is given (run_example.py merges --input over it).
EXAMPLE_INPUT: dict[str, Any] = {
    "order_id": "ORD-12345",
    "customer_id": "CUST-67890",
    "customer_email": "customer@example.com",
    "order_items": [
        {"sku": "ITEM-001", "quantity": 2, "price": 29.99},
        {"sku": "ITEM-002", "quantity": 1, "price": 49.99},
    ],
    "order_total": 109.97,
    "payment_method": "credit_card",
    "shipping_address": {"street": "123 Main St", "city": "Anytown", "state": "CA", "zip": "12345"},
    "customer_tier": "premium",
}
