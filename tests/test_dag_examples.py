"""Every seed example under examples/dag/ runs and gives its documented result.

Where an example calls outside services (HTTP services, Slack, PagerDuty, SMTP), the test
serves them on 127.0.0.1: examples/dag/stub_services.py for HTTP, aiosmtpd for email.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from durable.dag import DagResult, parse_definition

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dag"
sys.path.insert(0, str(EXAMPLES))

import ecommerce_order_tools  # noqa: E402
from run_example import report, run_file  # noqa: E402
from stub_services import StubServices  # noqa: E402


@pytest.fixture
def stub() -> Iterator[StubServices]:
    with StubServices() as services:
        yield services


@dataclass
class Inbox:
    envelopes: list[Envelope] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
async def inbox(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Inbox]:
    # aiosmtpd served by the test's own loop (the engine sends mail from a thread), and the
    # engine pointed at it the documented way: DURABLE_SMTP_HOST / DURABLE_SMTP_PORT.
    box = Inbox()
    protocol = partial(SMTP, box, hostname="localhost")
    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("DURABLE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DURABLE_SMTP_PORT", str(box.port))
    yield box
    server.close()
    await server.wait_closed()


async def run(name: str, run_input: Any = None) -> DagResult:
    return await run_file(EXAMPLES / name, run_input)


def statuses(result: DagResult) -> dict[str, str]:
    return {step_id: step.status for step_id, step in result.steps.items()}


def stdout(result: DagResult, step_id: str) -> str:
    step_result = result.steps[step_id].result
    assert isinstance(step_result, dict), (step_id, result.steps[step_id])
    return str(step_result["stdout"]).strip()


def out_json(result: DagResult, step_id: str) -> Any:
    return json.loads(stdout(result, step_id))


def counts(result: DagResult) -> tuple[str, int, int, int, int]:
    return (
        result.status,
        result.completed_count,
        result.failed_count,
        result.skipped_count,
        result.total_count,
    )


# -- 002: YAML script-runner workflows -----------------------------------------------------


async def test_quick_start_pipeline() -> None:
    result = await run("workflow.yaml")
    assert counts(result) == ("succeeded", 5, 0, 0, 5)
    assert out_json(result, "load_data") == {"loaded": 8, "total": 84, "table": "warehouse.events"}
    assert stdout(result, "notify_completion") == (
        "Data Processing Pipeline finished: load_data succeeded"
    )
    # 002's "Check results" lines.
    text = report(result)
    assert text.startswith(f"Status: succeeded\nDuration: {result.duration_seconds}s\n")
    assert "Tasks completed: 5/5" in text


async def test_quick_start_run_always_after_a_failure() -> None:
    result = await run("workflow.yaml", {"fail": "load_data"})
    assert counts(result) == ("partial", 4, 1, 0, 5)
    load = result.steps["load_data"]
    assert load.details is not None and load.details["exit_code"] == 1
    assert "warehouse connection refused" in (load.error or "")
    # extract_data has `retries: 2`, load_data none: one attempt.
    assert load.attempts == 1
    assert stdout(result, "notify_completion") == (
        "Data Processing Pipeline finished: load_data failed"
    )


async def test_etl_pipeline(stub: StubServices) -> None:
    result = await run("etl.yaml", {"api_endpoint": f"{stub.url}/v1"})
    assert counts(result) == ("succeeded", 7, 0, 0, 7)
    assert [(r.method, r.path) for r in stub.requests] == [("GET", "/v1/records")]
    merged = out_json(result, "validate_and_merge")
    assert [row["key"] for row in merged["rows"]] == [
        *("api:a1", "api:a2", "api:a3", "db:d1", "db:d2", "db:d3")
    ]
    assert merged["total_cents"] == (10 + 32 + 8 + 5 + 15 + 20) * 100
    assert out_json(result, "load_warehouse") == {"loaded": 6, "table": "warehouse.daily_sales"}
    assert stdout(result, "send_report") == (
        "Daily Data ETL report: load_warehouse succeeded, 6 rows loaded"
    )


async def test_etl_send_report_runs_when_the_load_fails(stub: StubServices) -> None:
    result = await run("etl.yaml", {"api_endpoint": f"{stub.url}/v1", "fail": "load_warehouse"})
    assert counts(result) == ("partial", 6, 1, 0, 7)
    assert result.steps["load_warehouse"].status == "failed"
    assert stdout(result, "send_report") == (
        "Daily Data ETL report: load_warehouse failed, 0 rows loaded"
    )


async def test_batch_matrix_results_in_order() -> None:
    result = await run("batch.yaml")
    assert counts(result) == ("succeeded", 4, 0, 0, 4)
    batch = result.steps["process_batch"]
    assert [i.matrix for i in batch.instances] == [{"batch_num": n} for n in range(16)]
    assert isinstance(batch.result, list) and len(batch.result) == 16
    per_batch = [json.loads(r["stdout"]) for r in batch.result]
    assert [b["batch"] for b in per_batch] == list(range(16))
    assert per_batch[3] == {"batch": 3, "items": [12, 13, 14, 15], "sum_of_squares": 734}
    total = sum(i * i for i in range(64))
    assert out_json(result, "aggregate_results") == {
        "batches": 16,
        "order": list(range(16)),
        "sum_of_squares": total,
    }
    assert stdout(result, "publish_results") == (
        f"published sum_of_squares={total} from 16 batches"
    )


async def test_deployment_pipeline() -> None:
    result = await run("deploy.yaml")
    assert counts(result) == ("succeeded", 7, 0, 0, 7)
    staging, production = out_json(result, "deploy_staging"), out_json(result, "deploy_production")
    assert staging == {
        "environment": "staging",
        "artifact": "app-1.0.0.tar.gz",
        "url": "https://staging.example.com",
    }
    assert production["environment"] == "production"
    assert out_json(result, "smoke_tests")["target"] == "https://staging.example.com"
    assert stdout(result, "notify_team") == (
        "Production Deployment Pipeline: deploy_production succeeded"
    )


async def test_deployment_stops_before_production_when_smoke_tests_fail() -> None:
    result = await run("deploy.yaml", {"fail": "smoke_tests"})
    assert counts(result) == ("partial", 5, 1, 1, 7)
    production = result.steps["deploy_production"]
    assert production.status == "skipped"
    assert production.skip_reason == "upstream 'smoke_tests' failed (all_success)"
    assert stdout(result, "notify_team") == (
        "Production Deployment Pipeline: deploy_production skipped"
    )


async def test_error_handling_conditions() -> None:
    result = await run("error_handling.yaml")
    assert counts(result) == ("succeeded", 4, 0, 1, 5)
    assert result.steps["send_alert"].skip_reason == "its condition/skip_if says skip"
    assert stdout(result, "generate_report") == "report: 100 records processed, 0 rejected"
    assert stdout(result, "recovery_task") == (
        "recovery: risky_operation succeeded after 1 attempt(s)"
    )


async def test_error_handling_retries_a_flaky_operation(tmp_path: Path) -> None:
    # `retries: 3` with retry_delay_ms 1000: one failed attempt costs one second.
    result = await run("error_handling.yaml", {"risky_failures": 1, "state_dir": str(tmp_path)})
    risky = result.steps["risky_operation"]
    assert risky.status == "succeeded" and risky.attempts == 2
    assert out_json(result, "risky_operation") == {"attempt": 2, "result": "ok"}
    assert stdout(result, "recovery_task") == (
        "recovery: risky_operation succeeded after 2 attempt(s)"
    )


async def test_error_handling_send_alert_never_fires_as_written() -> None:
    # The seed's nit, end to end (decide() alone: tests/dag/test_dag_schedule.py):
    # send_alert's condition asks for a failed process_data, but its default all_success
    # rule skips it as soon as process_data fails, before the condition is evaluated.
    result = await run("error_handling.yaml", {"process_fails": True})
    assert counts(result) == ("partial", 2, 1, 2, 5)
    process = result.steps["process_data"]
    assert process.details is not None and process.details["exit_code"] == 2
    for step_id in ("send_alert", "generate_report"):
        assert result.steps[step_id].skip_reason == "upstream 'process_data' failed (all_success)"
    assert stdout(result, "recovery_task").startswith("recovery: risky_operation succeeded")


async def test_error_handling_send_alert_fires_with_one_failed() -> None:
    # What the seed means: `trigger_rule: one_failed` lets the condition decide.
    path = EXAMPLES / "error_handling.yaml"
    text = path.read_text().replace(
        "    condition: '{{ process_data.exit_code != 0 }}'",
        "    trigger_rule: one_failed\n    condition: '{{ process_data.exit_code != 0 }}'",
    )
    assert "one_failed" in text
    app_result = await _run_definition(text, str(path), {"process_fails": True})
    assert app_result.steps["send_alert"].status == "succeeded"
    assert stdout(app_result, "send_alert") == "ALERT: process_data exited with code 2"
    assert app_result.steps["generate_report"].status == "skipped"


async def _run_definition(text: str, file: str, run_input: Any) -> DagResult:
    from sdk import App

    app = App("memory://")
    name = app.register_dag(parse_definition(text, file))
    async with app:
        return await app.run_dag(name, run_input)


async def test_notifications_success_posts_to_slack(
    stub: StubServices, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK", f"{stub.url}/services/T000/B000/XXXX")
    result = await run("notifications.yaml")
    assert counts(result) == ("succeeded", 1, 0, 0, 1)
    [slack] = stub.requests
    assert (slack.method, slack.path) == ("POST", "/services/T000/B000/XXXX")
    assert slack.body == {"text": "Pipeline completed successfully"}
    assert inbox.envelopes == []


async def test_notifications_failure_sends_email_and_pages(
    stub: StubServices, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK", f"{stub.url}/slack")
    monkeypatch.setenv("PD_KEY", "R0UTING-KEY")
    monkeypatch.setenv("PAGERDUTY_EVENTS_URL", f"{stub.url}/pagerduty/v2/enqueue")
    result = await run("notifications.yaml", {"fail": "main_task"})
    assert counts(result) == ("failed", 0, 1, 0, 1)
    # The email, at the local SMTP server.
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["ops@example.com"]
    assert isinstance(envelope.content, bytes)
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "Pipeline failed" and message["To"] == "ops@example.com"
    assert "Workflow: Important Pipeline (version 1)" in str(message.get_body())
    # The PagerDuty event, at the stub; no Slack message for a failure.
    [page] = stub.requests
    assert (page.method, page.path) == ("POST", "/pagerduty/v2/enqueue")
    assert page.body["routing_key"] == "R0UTING-KEY"
    assert page.body["event_action"] == "trigger"
    assert page.body["payload"]["custom_details"]["failed_steps"] == ["main_task"]


# -- 003: JSON workflows with http.request / transform / webhook / delay / condition ---------

ORDER = {"orderId": "order-123", "customerId": "customer-456", "amount": 99.99}


async def test_order_processing(stub: StubServices) -> None:
    result = await run("order_processing.json", {**ORDER, "services": stub.url})
    assert counts(result) == ("succeeded", 3, 0, 0, 3)
    order_id = {"orderId": "order-123"}
    assert [(r.method, r.path, r.body) for r in stub.requests[:3]] == [
        ("POST", "/validation-service/validate", {**order_id, "customerId": "customer-456"}),
        ("POST", "/payment-service/charge", {**order_id, "amount": 99.99}),
        ("POST", "/fulfillment-service/fulfill", {**order_id, "transactionId": "txn-0001"}),
    ]
    assert result.steps["validate-order"].result["body"] == {"valid": True}
    [done] = stub.to("/notifications/order-complete")
    assert done.body["event"] == "run.succeeded" and done.body["workflow"] == "order-processing"
    assert (done.body["completed"], done.body["total"]) == (3, 3)
    assert stub.to("/notifications/order-failed") == []


async def test_order_processing_failure_webhook(stub: StubServices) -> None:
    stub.fail("/fulfillment-service/fulfill", status=503)
    result = await run("order_processing.json", {**ORDER, "services": stub.url})
    assert counts(result) == ("partial", 2, 1, 0, 3)
    fulfill = result.steps["fulfill-order"]
    assert fulfill.details is not None and fulfill.details["status"] == 503
    assert json.loads(fulfill.details["body"]) == {"error": "simulated outage"}
    [failed] = stub.to("/notifications/order-failed")
    assert failed.body["event"] == "run.partial"
    assert failed.body["failed_steps"] == ["fulfill-order"]
    assert stub.to("/notifications/order-complete") == []


async def test_etl_pipeline_transforms(stub: StubServices) -> None:
    result = await run("etl_pipeline.json", {"services": stub.url})
    assert counts(result) == ("succeeded", 4, 0, 0, 4)
    users = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}, {"id": 3, "name": "Linus"}]
    orders = [
        {"id": 101, "userId": 1, "status": "active", "total": 25},
        {"id": 103, "userId": 3, "status": "active", "total": 12.5},
    ]
    assert result.steps["transform-users"].result == users
    assert result.steps["transform-orders"].result == orders
    extract, load = stub.requests
    assert (extract.method, extract.path, extract.body) == ("GET", "/source-system/data", None)
    assert (load.method, load.path) == ("POST", "/target-system/load")
    assert load.body == {"users": users, "orders": orders}
    assert load.headers["content-type"] == "application/json"


async def test_order_flow_with_a_retried_validation(stub: StubServices) -> None:
    # validate's retryPolicy (initialDelay 1000) absorbs one 503: a one-second wait.
    stub.fail("/validation/validate", status=503, times=1)
    result = await run("order_flow.json", {"orderId": "123", "services": stub.url})
    assert counts(result) == ("succeeded", 5, 0, 0, 5)
    assert result.steps["validate"].attempts == 2
    assert stub.paths == [
        "/validation/validate",
        "/validation/validate",
        "/inventory/check",
        "/payment/charge",
        "/shipping/ship",
        "/notifications/email",
        "/analytics/order-complete",
    ]
    [confirmation] = stub.to("/notifications/email")
    assert confirmation.body == {
        "type": "order-confirmation",
        "orderId": "123",
        "trackingNumber": "TRACK-42",
    }
    # The webhook action and http.request carry the run's idempotency key.
    assert confirmation.headers["idempotency-key"].startswith(result.run_id)


async def test_order_flow_failure(stub: StubServices) -> None:
    stub.fail("/shipping/ship", status=500)
    result = await run("order_flow.json", {"orderId": "123", "services": stub.url})
    assert counts(result) == ("partial", 3, 1, 1, 5)
    assert result.steps["send-confirmation"].skip_reason == (
        "upstream 'ship-order' failed (all_success)"
    )
    assert stub.to("/notifications/email") == []
    [failed] = stub.to("/support/order-failed")
    assert failed.body["status"] == "partial" and failed.body["failed_steps"] == ["ship-order"]


async def test_cicd_pipeline() -> None:
    result = await run("cicd.json")
    assert counts(result) == ("succeeded", 6, 0, 0, 6)
    assert list(result.steps) == [
        "checkout",
        "test",
        "build",
        "deploy-staging",
        "integration-tests",
        "deploy-production",
    ]


@pytest.mark.parametrize(
    ("items", "tier", "taken", "not_taken", "vip_gift"),
    [
        ([{"price": 30, "quantity": 2}], "vip", "auto-approve", "manual-review", "succeeded"),
        ([{"price": 80, "quantity": 2}], "standard", "manual-review", "auto-approve", "skipped"),
    ],
)
async def test_order_approval_conditions(
    stub: StubServices,
    items: list[dict[str, int]],
    tier: str,
    taken: str,
    not_taken: str,
    vip_gift: str,
) -> None:
    run_input = {"orderId": "o-7", "items": items, "customerTier": tier, "services": stub.url}
    result = await run("order_approval.json", run_input)
    total = sum(i["price"] * i["quantity"] for i in items)
    assert result.status == "succeeded"
    assert result.steps["score"].result == total
    assert result.steps["check-amount"].result is (total > 100)
    assert result.steps[taken].status == "succeeded"
    assert result.steps[not_taken].status == "skipped"
    assert result.steps[not_taken].skip_reason == (
        f"branch not taken: condition 'check-amount' was {str(total > 100).lower()}"
    )
    if taken == "manual-review":
        assert result.steps["manual-review"].result == {"waited_ms": 200}
        assert (result.steps["manual-review"].duration_seconds or 0) >= 0.2
    else:
        assert result.steps["auto-approve"].result == {
            "approved": True,
            "orderId": "o-7",
            "total": total,
        }
    [notify] = stub.to("/notifications/approval")
    assert notify.body == {"orderId": "o-7", "total": total, "route": taken}
    assert result.steps["vip-gift"].status == vip_gift
    assert len(stub.to("/notifications/vip-gift")) == (vip_gift == "succeeded")
    if vip_gift == "skipped":
        assert result.steps["vip-gift"].skip_reason == (
            "branch not taken: condition 'vip-check' was false"
        )


# -- 004: the e-commerce order workflow (tools as registered actions) -------------------------

ORDER_004 = ecommerce_order_tools.EXAMPLE_INPUT
FULFILLMENT = ["update_inventory", "create_shipping_label", "send_confirmation_email", "update_crm"]


async def run_004(**changes: Any) -> DagResult:
    return await run_file(
        EXAMPLES / "ecommerce_order.yaml", {**ORDER_004, **changes}, tools=ecommerce_order_tools
    )


async def test_ecommerce_order_happy_path() -> None:
    result = await run_004()
    assert counts(result) == ("succeeded", 11, 0, 3, 14)
    skipped = {k: v.skip_reason for k, v in result.steps.items() if v.status == "skipped"}
    assert skipped == {
        "order_validation_agent": "branch not taken: condition 'inventory_check' was true",
        "inventory_agent": "branch not taken: condition 'payment_processing' was true",
        "manual_review": "no step it handles failed ('process_payment'; on_error handler)",
    }
    # The loop: one iteration per order item.
    loop = result.steps["update_inventory"]
    assert [i.result for i in loop.instances] == [
        {"iteration": 1, "sku": "ITEM-001", "remaining": 8},
        {"iteration": 2, "sku": "ITEM-002", "remaining": 2},
    ]
    final = result.steps["fulfillment_agent"].result
    assert final["reply"] == (
        "fulfillment_agent: done: Complete order fulfillment for order ORD-12345"
    )
    assert final["context"] == {"order_status": "fulfilled", "customer_tier": "premium"}
    assert result.steps["process_payment"].result["amount"] == 109.97


async def test_ecommerce_order_one_failed_branch_still_completes() -> None:
    # 004's continue_on_partial_failure with a minimum success count of 3 (of 4).
    result = await run_004(simulate_failures=["update_crm"])
    assert counts(result) == ("partial", 10, 1, 3, 14)
    assert {s: result.steps[s].status for s in FULFILLMENT} == {
        "update_inventory": "succeeded",
        "create_shipping_label": "succeeded",
        "send_confirmation_email": "succeeded",
        "update_crm": "failed",
    }
    final = result.steps["fulfillment_agent"]
    assert final.status == "succeeded"
    assert final.result["context"]["order_status"] == "fulfilled_with_errors"


async def test_ecommerce_order_two_failed_branches_skip_the_final_step() -> None:
    result = await run_004(simulate_failures=["update_inventory", "update_crm"])
    assert counts(result) == ("partial", 8, 2, 4, 14)
    # The loop's JavaScript awaited the tool, which raised: the iteration failed with it.
    inventory = result.steps["update_inventory"]
    assert "update_inventory: inventory database unavailable (simulated)" in (inventory.error or "")
    assert [i.status for i in inventory.instances] == ["failed"]
    assert result.steps["fulfillment_agent"].skip_reason == (
        "2 of 4 upstream succeeded, needs 3 (min_success)"
    )


async def test_ecommerce_order_payment_error_handler() -> None:
    # process_payment fails both attempts; its on_error fallback (manual_review) succeeds,
    # which recovers it: the fulfillment goes on and the run counts as succeeded.
    result = await run_004(simulate_failures=["process_payment"])
    assert counts(result) == ("succeeded", 11, 1, 2, 14)
    payment = result.steps["process_payment"]
    assert payment.status == "failed" and payment.attempts == 2
    assert result.steps["manual_review"].status == "succeeded"
    assert result.steps["fulfillment_check"].result is True
    assert result.steps["fulfillment_agent"].status == "succeeded"


@pytest.mark.parametrize(
    ("changes", "ran", "branch_skipped"),
    [
        (
            {"order_items": [{"sku": "ITEM-001", "quantity": 0, "price": 29.99}]},
            "order_validation_agent",
            ("check_inventory", "branch not taken: condition 'inventory_check' was false"),
        ),
        (
            {"order_items": [{"sku": "ITEM-002", "quantity": 5, "price": 49.99}]},
            "inventory_agent",
            ("process_payment", "branch not taken: condition 'payment_processing' was false"),
        ),
    ],
)
async def test_ecommerce_order_else_branches(
    changes: dict[str, Any], ran: str, branch_skipped: tuple[str, str]
) -> None:
    result = await run_004(**changes)
    assert result.status == "succeeded"
    assert result.steps[ran].status == "succeeded"
    step_id, reason = branch_skipped
    assert result.steps[step_id].skip_reason == reason
    # Everything after the branch not taken is skipped, the final step included.
    for later in ("fulfillment_check", *FULFILLMENT, "fulfillment_agent"):
        assert result.steps[later].status == "skipped", later


# -- the runner ---------------------------------------------------------------------------


def test_run_example_prints_the_check_results_lines() -> None:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_example.py"), str(EXAMPLES / "workflow.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Status: succeeded"
    assert lines[1].startswith("Duration: ") and lines[1].endswith("s")
    assert lines[2] == "Tasks completed: 5/5 (0 failed, 0 skipped)"
    assert "✅ notify_completion" in proc.stdout


def test_run_example_with_companion_tools() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "run_example.py"),
            str(EXAMPLES / "ecommerce_order.yaml"),
            "--input",
            '{"simulate_failures": ["update_crm"]}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr  # partial
    assert proc.stdout.startswith("Status: partial\n")
    assert "Tasks completed: 10/14 (1 failed, 3 skipped)" in proc.stdout
    assert "✅ fulfillment_agent" in proc.stdout
