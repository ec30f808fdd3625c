"""Notification delivery against real loopback HTTP and SMTP servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from loopback import Inbox, Web

from durable.dag._deliver import DeliveryConfigError, DeliveryError, SmtpSettings, deliver, summary
from durable.dag._graph import DELIVERY_POLICY
from durable.dag._model import Notification

EVENT: dict[str, Any] = dict(
    event="run.failed", workflow="etl", version="1", run_id="run-42", status="failed",
    completed=3, failed=1, skipped=1, total=5, duration_seconds=12.34,
)  # fmt: skip


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        yield http


async def test_webhook_posts_the_event(web: Web, client: httpx.AsyncClient) -> None:
    note = Notification(type="webhook", url=f"{web.url}/events?token=s3cret")
    receipt = await deliver(note, EVENT, client=client, smtp=SmtpSettings())
    [(path, body)] = web.bodies
    assert path == "/events?token=s3cret" and json.loads(body) == EVENT
    # The query (a likely secret) is left out of the receipt, which goes into the log.
    target = f"{web.url}/events"
    assert receipt == dict(channel="webhook", target=target, status="delivered", http_status=200)


async def test_slack_default_text_summarises_the_run(web: Web, client: httpx.AsyncClient) -> None:
    kw: dict[str, Any] = {"client": client, "smtp": SmtpSettings()}
    note = Notification(type="slack", webhook=f"{web.url}/services/T0/B0/secret")
    receipt = await deliver(note, EVENT, **kw)
    path, body = web.bodies[0]
    assert path == "/services/T0/B0/secret"
    text = "etl v1 (run run-42) failed: 3/5 steps completed, 1 failed, 1 skipped in 12.3s"
    assert json.loads(body) == {"text": text} and summary(EVENT) == text
    assert "secret" not in json.dumps(receipt)
    await deliver(Notification(type="slack", webhook=web.url, message="Done"), EVENT, **kw)
    assert json.loads(web.bodies[1][1]) == {"text": "Done"}


async def test_slack_500_is_a_delivery_error_without_the_secret(
    web: Web, client: httpx.AsyncClient
) -> None:
    web.status, web.answer = 500, b"no_service"
    note = Notification(type="slack", webhook=f"{web.url}/services/T0/B0/secret")
    with pytest.raises(DeliveryError) as caught:
        await deliver(note, EVENT, client=client, smtp=SmtpSettings())
    text = str(caught.value)
    assert text.startswith(f"slack notification to {web.url}/... failed: POST {web.url}/...")
    assert "500 Internal Server Error: no_service" in text
    assert "secret" not in text and caught.value.__cause__ is None
    assert (caught.value.channel, caught.value.target) == ("slack", f"{web.url}/...")


async def test_webhook_connection_refused(dead_port: int, client: httpx.AsyncClient) -> None:
    note = Notification(type="webhook", url=f"http://127.0.0.1:{dead_port}/hook")
    with pytest.raises(DeliveryError, match=r"^webhook notification to .*/hook failed: .*connect"):
        await deliver(note, EVENT, client=client, smtp=SmtpSettings())


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (Notification(type="webhook", url=""), "no URL: set `url:`"),
        (Notification(type="slack", webhook="hooks.slack.com/x"), "`webhook:` must be"),
        (Notification(type="pagerduty"), "no routing key: set `integration_key:`"),
        (Notification(type="email"), "no recipients: set `recipients:`"),
    ],
)
async def test_unusable_notifications(
    note: Notification, message: str, client: httpx.AsyncClient
) -> None:
    # Configuration errors: sending again cannot help, so the delivery is not retried.
    with pytest.raises(DeliveryConfigError, match=message) as info:
        await deliver(note, EVENT, client=client, smtp=SmtpSettings())
    assert info.value.details["reason"] == info.value.reason
    assert DeliveryConfigError in DELIVERY_POLICY.non_retryable


async def test_pagerduty_event(web: Web, client: httpx.AsyncClient) -> None:
    web.status, web.answer = 202, b'{"status": "success"}'
    note = Notification(type="pagerduty", integration_key="R0UTING")
    url = f"{web.url}/v2/enqueue"
    receipt = await deliver(note, EVENT, client=client, smtp=SmtpSettings(), pagerduty_url=url)
    path, body = web.bodies[0]
    assert path == "/v2/enqueue"
    assert json.loads(body) == {
        "routing_key": "R0UTING",
        "event_action": "trigger",
        "dedup_key": "durable/etl/run-42",
        "payload": {
            "summary": summary(EVENT),
            "source": "durable",
            "severity": "error",
            "custom_details": EVENT,
        },
    }
    assert receipt["http_status"] == 202 and receipt["target"] == url
    # A notification's own url wins over the default endpoint.
    note = Notification(type="pagerduty", integration_key="K", url=f"{web.url}/mine", message="m")
    await deliver(note, EVENT, client=client, smtp=SmtpSettings(), pagerduty_url="http://x.invalid")
    path, body = web.bodies[1]
    assert path == "/mine" and json.loads(body)["payload"]["summary"] == "m"


async def test_email_default_subject_and_body(inbox: Inbox, client: httpx.AsyncClient) -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=inbox.port, sender="ci@example.com")
    note = Notification(type="email", recipients=("ops@example.com", "dev@example.com"))
    receipt = await deliver(note, EVENT, client=client, smtp=smtp)
    target = "ops@example.com, dev@example.com"
    assert receipt == dict(channel="email", target=target, status="delivered", refused=[])
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "ci@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]
    message, body = inbox.message()
    assert message["From"] == "ci@example.com"
    assert message["To"] == "ops@example.com, dev@example.com"
    assert message["Subject"] == "[durable] etl failed"
    assert "Workflow: etl (version 1)" in body
    assert "Steps:    3/5 steps completed, 1 failed, 1 skipped" in body
    assert json.loads(body.split("Event:\n", 1)[1]) == EVENT
    assert inbox.logins == []


async def test_email_message_subject_and_login(inbox: Inbox, client: httpx.AsyncClient) -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=inbox.port, username="bot", password="pw")
    to = ("ops@example.com",)
    note = Notification(type="email", recipients=to, subject="A\nB", message="Look at run-42")
    await deliver(note, EVENT, client=client, smtp=smtp)
    message, body = inbox.message()
    assert message["From"] == "durable@localhost"
    assert message["Subject"] == "A B"
    assert body.startswith("Look at run-42\n\nEvent:\n")
    assert json.loads(body.split("Event:\n", 1)[1]) == EVENT
    assert inbox.logins == [(b"bot", b"pw")]


async def test_email_to_a_server_that_is_not_listening(
    dead_port: int, client: httpx.AsyncClient
) -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=dead_port, timeout=5.0)
    note = Notification(type="email", recipients=("ops@example.com",))
    with pytest.raises(DeliveryError) as caught:
        await deliver(note, EVENT, client=client, smtp=smtp)
    assert str(caught.value).startswith(
        f"email notification to ops@example.com failed: SMTP 127.0.0.1:{dead_port}: "
        "ConnectionRefusedError"
    )


def test_smtp_settings_from_env() -> None:
    assert SmtpSettings.from_env({}) == SmtpSettings()
    env = {"HOST": "mail.example.com", "PORT": "587", "USER": "bot", "PASSWORD": "hunter2"}
    env |= {"FROM": "ci@example.com", "STARTTLS": "Yes"}
    settings = SmtpSettings.from_env({f"DURABLE_SMTP_{k}": v for k, v in env.items()})
    assert settings == SmtpSettings(
        "mail.example.com", 587, "bot", "hunter2", "ci@example.com", True
    )
    assert "hunter2" not in repr(settings)
    assert SmtpSettings.from_env({"DURABLE_SMTP_STARTTLS": "0"}).starttls is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        *(("PORT", port, "PORT must be a TCP port number 1-65535") for port in ("x", "0", "70000")),
        ("STARTTLS", "maybe", "STARTTLS must be 1/true/yes or 0/false/no"),
    ],
)
def test_smtp_settings_bad_values(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"DURABLE_SMTP_{message}, got '{value}'"):
        SmtpSettings.from_env({f"DURABLE_SMTP_{name}": value})
