"""The seeds' own YAML and JSON examples load into the one model, with the right details."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.dag import DagDefinition, RetryPolicy, load_definition

EXAMPLES = Path(__file__).parent / "examples"


def load(name: str) -> DagDefinition:
    return load_definition(EXAMPLES / name)


def deps(definition: DagDefinition) -> dict[str, tuple[str, ...]]:
    return {s.id: s.depends_on for s in definition.steps}


def test_etl_yaml() -> None:
    d = load("etl.yaml")
    assert (d.name, d.version) == ("Daily Data ETL", "1.0.0")
    assert [s.id for s in d.steps] == [
        "fetch_from_api",
        "fetch_from_db",
        "transform_api_data",
        "transform_db_data",
        "validate_and_merge",
        "load_warehouse",
        "send_report",
    ]
    assert deps(d)["validate_and_merge"] == ("transform_api_data", "transform_db_data")
    api = d.step("fetch_from_api")
    assert api.kind == "script" and api.script == "./etl/extract_api.py"
    assert api.timeout_seconds == 3600
    assert api.environment == {"API_ENDPOINT": "https://api.example.com/v1"}
    assert api.trigger_rule == "all_success"
    # run_always is the all_done trigger rule.
    assert d.step("send_report").trigger_rule == "all_done"
    # Lines point at each task's key in the file.
    assert api.location.line == 6 and api.location.file == str(EXAMPLES / "etl.yaml")
    assert d.step("send_report").location.line == 42


def test_batch_matrix_yaml() -> None:
    step = load("batch.yaml").step("process_batch")
    assert step.parallelism == 16
    assert step.matrix == {"batch_num": tuple(range(16))}
    assert step.environment == {"BATCH_NUM": "{{ matrix.batch_num }}"}
    assert step.timeout_seconds == 120 * 60


def test_deployment_yaml() -> None:
    d = load("deploy.yaml")
    assert deps(d)["build_artifacts"] == ("run_tests", "security_scan")
    assert d.step("deploy_production").environment == {"ENVIRONMENT": "production"}
    assert d.step("notify_team").trigger_rule == "all_done"


def test_error_handling_yaml() -> None:
    d = load("error_handling.yaml")
    risky = d.step("risky_operation")
    # `retries: 3` means three more attempts after the first one.
    assert risky.retry == RetryPolicy(
        max_attempts=4, initial_delay_ms=1000, backoff="exponential", multiplier=2.0
    )
    assert d.step("recovery_task").trigger_rule == "all_done"
    # The `{{ }}` wrapper is syntax; the model keeps the JavaScript expression itself.
    assert d.step("send_alert").condition == "process_data.exit_code != 0"
    assert d.step("generate_report").condition == "process_data.exit_code == 0"


def test_nested_workflow_with_notifications_and_resources() -> None:
    d = load("notifications.yaml")
    assert d.name == "Important Pipeline"
    task = d.step("main_task")
    assert (task.resources.cpu_cores, task.resources.memory_mb, task.resources.disk_gb) == (
        8,
        32768,
        100,
    )
    assert task.skip_if == "previous_task.failed"
    [slack] = d.notifications.on_success
    assert slack.type == "slack" and slack.webhook == "{{ env.SLACK_WEBHOOK }}"
    email, pager = d.notifications.on_failure
    assert email.recipients == ("ops@example.com",) and email.subject == "Pipeline failed"
    assert pager.integration_key == "{{ env.PD_KEY }}"
    assert pager.location.line == 23


def test_order_processing_json() -> None:
    d = load("order_processing.json")
    assert (d.name, d.title) == ("order-processing", "Order Processing Workflow")
    assert deps(d) == {
        "validate-order": (),
        "charge-payment": ("validate-order",),
        "fulfill-order": ("charge-payment",),
    }
    charge = d.step("charge-payment")
    assert charge.kind == "action" and charge.action == "http.request"
    assert charge.params == {"url": "http://payment-service/charge", "method": "POST"}
    # maxAttempts counts the first attempt, as the seed's "Attempt 1: Immediate" says.
    assert charge.retry == RetryPolicy(
        max_attempts=5,
        initial_delay_ms=2000,
        backoff="exponential",
        multiplier=2,
        max_delay_ms=30000,
    )
    assert d.step("fulfill-order").retry.max_attempts == 1
    assert d.webhooks.on_complete == "http://notifications/order-complete"
    assert d.webhooks.on_failure == "http://notifications/order-failed"
    assert charge.location.line == 24


@pytest.mark.parametrize(
    ("name", "fan_in"),
    [
        ("etl_pipeline.json", ("load", ("transform-users", "transform-orders"))),
        ("order_flow.json", ("send-confirmation", ("ship-order",))),
        ("cicd.json", ("deploy-production", ("integration-tests",))),
    ],
)
def test_other_json_examples(name: str, fan_in: tuple[str, tuple[str, ...]]) -> None:
    d = load(name)
    step_id, expected = fan_in
    assert d.step(step_id).depends_on == expected


def test_json_actions_and_noop_steps() -> None:
    etl = load("etl_pipeline.json")
    assert etl.step("transform-users").action == "transform"
    assert load("order_flow.json").step("send-confirmation").action == "webhook"
    # 003's CI/CD steps name no action: they load as markers that simply succeed.
    assert {s.kind for s in load("cicd.json").steps} == {"noop"}
