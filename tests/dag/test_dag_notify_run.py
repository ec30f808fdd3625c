"""Notifications and webhooks of DAG runs, delivered from the log to real loopback servers:
retried until delivered, recorded as instances of the run, sent before the run ends."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from loopback import Inbox, Web

from durable.dag import parse_definition
from sdk import App

pytestmark = pytest.mark.asyncio


async def test_yaml_notifications_slack_on_success_email_on_failure(
    tmp_path: Path, web: Web, inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK", f"{web.url}/slack")
    monkeypatch.setenv("DURABLE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DURABLE_SMTP_PORT", str(inbox.port))
    text = textwrap.dedent(
        """
        name: Important Pipeline
        tasks:
          main_task:
            script: 'test "$FAIL" != true'
            environment:
              FAIL: '{{ input.fail }}'
        notifications:
          on_success:
            - type: slack
              webhook: '{{ env.SLACK_WEBHOOK }}'
              message: 'Pipeline completed successfully'
          on_failure:
            - type: email
              recipients: ['ops@example.com']
              subject: 'Pipeline failed'
        """
    )
    # The slack endpoint fails twice first: the delivery is retried until it goes through.
    web.fail_first("/slack", 2)
    app = App(f"sqlite:///{tmp_path / 'runs.db'}", expose_env=["SLACK_WEBHOOK"])
    async with app:
        name = app.register_dag(parse_definition(text, str(tmp_path / "n.yaml")))
        ok = await app.run_dag(name, {"fail": False}, timeout=60)
        assert ok.status == "succeeded"
        assert web.posted("/slack") == [{"text": "Pipeline completed successfully"}] * 3
        names = {s.name: s for s in (await app.get_run(ok.run_id)).steps}
        delivery = names["@notify.on_success[0]"]
        assert (delivery.status, delivery.attempts) == ("succeeded", 3)
        assert inbox.envelopes == []

        bad = await app.run_dag(name, {"fail": True}, timeout=60)
        assert bad.status == "failed"
        message, body = inbox.message()
        assert message["Subject"] == "Pipeline failed"
        assert message["To"] == "ops@example.com"
        assert "Important Pipeline" in body and "failed" in body
        assert len(web.posted("/slack")) == 3  # no success notification for the failure


async def test_json_webhooks_on_step_and_on_complete(tmp_path: Path, web: Web) -> None:
    definition = {
        "id": "order-flow",
        "name": "E-commerce Order Flow",
        "steps": [
            {
                "id": "validate",
                "name": "Validate Order",
                "type": "task",
                "action": "http.request",
                "params": {"url": "{{ input.services }}/validate", "method": "POST",
                           "body": {"order": "{{ input.orderId }}"}},
                "dependencies": [],
            },
            {
                "id": "send-confirmation",
                "type": "task",
                "action": "webhook",
                "params": {"url": "{{ input.services }}/email",
                           "payload": {"type": "order-confirmation"}},
                "dependencies": ["validate"],
            },
        ],
        "webhooks": {
            "onComplete": f"{web.url}/complete",
            "onFailure": f"{web.url}/failed",
            "onStep": f"{web.url}/step",
        },
    }  # fmt: skip
    web.reply("/validate", 200, "application/json", b'{"valid": true}')
    app = App(f"sqlite:///{tmp_path / 'runs.db'}")
    async with app:
        name = app.register_dag(
            parse_definition(json.dumps(definition), str(tmp_path / "flow.json"))
        )
        result = await app.run_dag(name, {"services": web.url, "orderId": "123"}, timeout=60)
    assert result.status == "succeeded"
    assert result.steps["validate"].result["body"] == {"valid": True}
    assert web.posted("/validate") == [{"order": "123"}]
    assert web.posted("/email") == [{"type": "order-confirmation"}]
    steps = web.posted("/step")
    assert sorted(s["step"]["id"] for s in steps) == ["send-confirmation", "validate"]
    assert all(s["event"] == "step.completed" and s["run_id"] == result.run_id for s in steps)
    [done] = web.posted("/complete")
    assert done["event"] == "run.succeeded"
    assert (done["completed"], done["total"], done["failed"]) == (2, 2, 0)
    assert web.posted("/failed") == []
    # Every delivery finished before the run's end was recorded.
    last_request = max(i for i, s in enumerate(web.requests) if s.path == "/complete")
    assert last_request == len(web.requests) - 1
