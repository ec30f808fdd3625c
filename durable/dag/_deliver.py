"""Deliver one workflow-level notification: a generic webhook, Slack, email or PagerDuty.

The caller has already rendered the notification's templates; this module only turns the
notification and the run's event into the channel's wire format and sends it. Every failure
comes out as a `DeliveryError` naming the channel and the target.
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any

from durable._lazy import lazy_module

from ._http import HttpActionError, HttpStatusError, send_webhook
from ._model import Notification

if TYPE_CHECKING:
    import httpx
else:
    httpx = lazy_module("httpx")  # loaded when first used

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_PAGERDUTY_SUMMARY_LIMIT = 1024  # Events API v2 rejects longer summaries
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # settings get logged; secrets not
    sender: str = "durable@localhost"
    starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SmtpSettings:
        """Settings from DURABLE_SMTP_* variables; an empty variable counts as unset."""
        port_text = environ.get("DURABLE_SMTP_PORT", "").strip()
        port = cls.port
        if port_text:
            try:
                port = int(port_text)
            except ValueError:
                port = -1
            if not 0 < port < 65536:
                raise ValueError(
                    f"DURABLE_SMTP_PORT must be a TCP port number 1-65535, got {port_text!r}"
                )
        starttls_text = environ.get("DURABLE_SMTP_STARTTLS", "").strip().lower()
        if starttls_text not in _TRUE | _FALSE:
            raise ValueError(
                f"DURABLE_SMTP_STARTTLS must be 1/true/yes or 0/false/no, got {starttls_text!r}"
            )
        return cls(
            host=environ.get("DURABLE_SMTP_HOST") or cls.host,
            port=port,
            username=environ.get("DURABLE_SMTP_USER") or None,
            password=environ.get("DURABLE_SMTP_PASSWORD") or None,
            sender=environ.get("DURABLE_SMTP_FROM") or cls.sender,
            starttls=starttls_text in _TRUE,
        )


class DeliveryError(Exception):
    """A notification could not be delivered."""

    def __init__(self, channel: str, target: str, reason: str) -> None:
        self.channel = channel
        self.target = target
        self.reason = reason
        # Recorded with the failure (ErrorInfo.details), for the run's summary to show.
        self.details = {"channel": channel, "target": target, "reason": reason}
        super().__init__(f"{channel} notification to {target} failed: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call cls(message); errors may cross process boundaries.
        return (type(self), (self.channel, self.target, self.reason))


class DeliveryConfigError(DeliveryError):
    """The notification itself is unusable (no URL, no recipients, no routing key): sending
    it again cannot help, so it is not retried."""


def _counts(event: Mapping[str, Any]) -> str:
    return (
        f"{event.get('completed', 0)}/{event.get('total', 0)} steps completed,"
        f" {event.get('failed', 0)} failed, {event.get('skipped', 0)} skipped"
    )


def _step_id(event: Mapping[str, Any]) -> str | None:
    step = event.get("step")
    return str(step.get("id")) if isinstance(step, Mapping) and "id" in step else None


def summary(event: Mapping[str, Any]) -> str:
    """One line: what ran, how it ended, the step counts and how long it took."""
    workflow = f"{event.get('workflow', '?')} v{event.get('version', '?')}"
    step = _step_id(event)
    subject = f"step {step} of {workflow}" if step else workflow
    duration = event.get("duration_seconds")
    took = f" in {duration:.1f}s" if isinstance(duration, int | float) else ""
    return (
        f"{subject} (run {event.get('run_id', '?')}) {event.get('status', '?')}:"
        f" {_counts(event)}{took}"
    )


def _email_body(note: Notification, event: Mapping[str, Any]) -> str:
    text = note.message or "\n".join(
        [
            f"Workflow: {event.get('workflow', '?')} (version {event.get('version', '?')})",
            f"Run:      {event.get('run_id', '?')}",
            f"Event:    {event.get('event', '?')}",
            f"Status:   {event.get('status', '?')}",
            f"Steps:    {_counts(event)}",
            f"Duration: {event.get('duration_seconds', '?')}s",
            *([f"Step:     {step}"] if (step := _step_id(event)) else []),
        ]
    )
    return f"{text}\n\nEvent:\n{json.dumps(event, indent=2, sort_keys=True, default=str)}\n"


def _one_line(text: str) -> str:
    # A rendered subject may hold a newline, which EmailMessage refuses in a header.
    return " ".join(text.split())


def _send_mail(smtp: SmtpSettings, message: EmailMessage) -> dict[str, Any]:
    """Blocking: run in a worker thread. Returns the recipients the server refused."""
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as server:
        if smtp.starttls:
            server.starttls(context=ssl.create_default_context())
        if smtp.username:
            server.login(smtp.username, smtp.password or "")
        return server.send_message(message)


async def _email(
    note: Notification, event: Mapping[str, Any], smtp: SmtpSettings, target: str
) -> dict[str, Any]:
    if not note.recipients:
        raise DeliveryConfigError("email", target, "no recipients: set `recipients:`")
    try:
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = ", ".join(note.recipients)
        message["Subject"] = _one_line(
            note.subject or f"[durable] {event.get('workflow', '?')} {event.get('status', '?')}"
        )
        message["Date"] = formatdate(localtime=True)
        # An explicit domain: make_msgid() would otherwise do a (possibly slow) FQDN lookup.
        message["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or "localhost")
        message.set_content(_email_body(note, event))
        refused = await asyncio.to_thread(_send_mail, smtp, message)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        reason = f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}: {exc}"
        raise DeliveryError("email", target, reason) from exc
    # Some recipients refused is still a delivery; raising would make a retry mail the
    # others twice. The receipt records who did not get it.
    return {"channel": "email", "target": target, "status": "delivered", "refused": list(refused)}


def _target(url: httpx.URL, *, secret_path: bool) -> str:
    """`url` as shown in errors and receipts, which end up in the event log: without
    credentials or query, and for Slack without the path, which is the webhook's secret."""
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    return f"{origin}/..." if secret_path else origin + url.path


async def deliver(
    note: Notification,
    event: Mapping[str, Any],
    *,
    client: httpx.AsyncClient,
    smtp: SmtpSettings,
    pagerduty_url: str = PAGERDUTY_EVENTS_URL,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Send `note` about `event`; returns a JSON-able receipt or raises DeliveryError.

    HTTP channels send `idempotency_key` as the Idempotency-Key header: a delivery sent again
    (after a crash before it was recorded) carries the same key, for the receiver to dedupe."""
    channel = note.type
    if channel == "email":
        return await _email(note, event, smtp, ", ".join(note.recipients) or "(no recipients)")
    payload: Any
    if channel == "webhook":
        raw, field_name, payload = note.url, "url", dict(event)
    elif channel == "slack":
        raw, field_name = note.webhook, "webhook"
        payload = {"text": note.message or summary(event)}
    elif channel == "pagerduty":
        raw, field_name = note.url or pagerduty_url, "url"
        if not note.integration_key:
            raise DeliveryConfigError(channel, raw, "no routing key: set `integration_key:`")
        payload = {
            "routing_key": note.integration_key,
            "event_action": "trigger",
            # One incident per run: a retried delivery is folded into the open incident.
            "dedup_key": f"durable/{event.get('workflow', '?')}/{event.get('run_id', '?')}",
            "payload": {
                "summary": (note.message or summary(event))[:_PAGERDUTY_SUMMARY_LIMIT],
                "source": "durable",
                "severity": "error",
                "custom_details": dict(event),
            },
        }
    else:
        raise DeliveryConfigError(str(channel), "?", f"unknown notification type {channel!r}")
    if not raw:
        raise DeliveryConfigError(channel, "(no URL)", f"no URL: set `{field_name}:`")
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        reason = f"`{field_name}:` must be an absolute http:// or https:// URL"
        raise DeliveryConfigError(channel, "(invalid URL)", reason)
    target = _target(url, secret_path=channel == "slack")
    try:
        answer = await send_webhook(
            client, {"url": raw, "payload": payload}, idempotency_key=idempotency_key
        )
    except (HttpStatusError, HttpActionError) as exc:
        # from None: the cause's message and attributes carry the unredacted URL.
        raise DeliveryError(channel, target, str(exc).replace(str(url), target)) from None
    return {
        "channel": channel,
        "target": target,
        "status": "delivered",
        "http_status": answer["status"],
    }
