"""Notifications and webhooks of a DAG run, delivered from the log.

Each delivery is an instance in the run's log (`@notify.on_failure[0]`, `@webhook.on_step.x`),
executed by the same attempt loop as steps: started, retried with backoff, recorded as
delivered or given up on. After a crash the executor sees which deliveries the log holds
finished and sends only the others, so none is lost and none is repeated once recorded.
The run's own end (RunCompleted / RunFailed) is recorded after its deliveries.

Which fire: `on_success` notifications and the `on_complete` webhook when the run succeeded;
`on_failure` and `on_failure` webhook when it failed or was partial (some steps failed);
`on_step` after every step that succeeded or failed (not for skips).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from ._deliver import DeliveryConfigError, deliver
from ._expr import has_templates, render
from ._model import Notification
from ._report import StepReport
from ._schedule import RunOutcome

if TYPE_CHECKING:
    from ._run import DagExecutor


@dataclass(frozen=True, slots=True)
class Delivery:
    name: str
    note: Notification
    event: dict[str, Any]

    async def send(self, executor: DagExecutor, idempotency_key: str) -> Any:
        note = self.note
        fields = msgspec.to_builtins(note)
        fields.pop("location", None)
        if has_templates(fields):
            pool = await executor.services.js()
            scope = executor.view.scope(None, {})
            fields = await render(pool, fields, scope, where=self.name)
            note = msgspec.convert(fields, Notification)
            unset = _emptied(self.note, note, scope.get("env", {}))
            if unset is not None:
                raise DeliveryConfigError(note.type, "(not set)", unset)
        services = executor.services
        return await deliver(
            note,
            self.event,
            client=services.http,
            smtp=services.smtp,
            idempotency_key=idempotency_key,
        )


# The field each channel cannot do without, when it may come from a template.
_NEEDED = {"slack": "webhook", "webhook": "url", "pagerduty": "integration_key"}
_ENV_ONLY = re.compile(r"\{\{\s*env\.([A-Za-z_]\w*)\s*\}\}")


def _emptied(raw: Notification, rendered: Notification, exposed: Mapping[str, Any]) -> str | None:
    """Why a needed field whose template rendered to nothing is empty, in the user's terms:
    `{{ env.SLACK_WEBHOOK }}` with no SLACK_WEBHOOK is a configuration error, not a
    delivery to retry."""
    key = _NEEDED.get(raw.type)
    template = getattr(raw, key) if key else None
    if key is None or not isinstance(template, str) or getattr(rendered, key):
        return None
    only = _ENV_ONLY.fullmatch(template.strip())
    if only is None:
        return f"`{key}:` {template!r} is empty once rendered"
    name = only.group(1)
    if name in os.environ and name not in exposed:
        return (
            f"{name} is set but not exposed to templates: expose it with --expose-env {name} "
            f"(or App(expose_env=[{name!r}]))"
        )
    return f"{name} is not set (`{key}:` is {template!r})"


def _base(executor: DagExecutor) -> dict[str, Any]:
    return {
        "workflow": executor.definition.name,
        "version": executor.definition.version,
        "run_id": executor.state.run_id,
    }


def run_event(executor: DagExecutor, outcome: RunOutcome) -> dict[str, Any]:
    # Computed from the log only (no clock), so a delivery retried after a crash carries the
    # same payload as the first attempt.
    ends = [r.finished_at for r in executor.reports.values() if r.finished_at is not None]
    created = executor.state.created_at
    duration = round(max(ends) - created, 3) if ends and created is not None else 0.0
    return {
        "event": f"run.{outcome.status}",
        **_base(executor),
        **outcome.counts(),
        "duration_seconds": duration,
        "failed_steps": sorted(r.id for r in executor.reports.values() if r.status == "failed"),
    }


def final_deliveries(executor: DagExecutor, outcome: RunOutcome) -> Iterator[Delivery]:
    definition = executor.definition
    event = run_event(executor, outcome)
    success = outcome.status == "succeeded"
    kind = "on_success" if success else "on_failure"
    for i, note in enumerate(getattr(definition.notifications, kind)):
        yield Delivery(f"@notify.{kind}[{i}]", note, event)
    hook = definition.webhooks.on_complete if success else definition.webhooks.on_failure
    if hook:
        name = "on_complete" if success else "on_failure"
        yield Delivery(f"@webhook.{name}", Notification(type="webhook", url=hook), event)


def step_delivery(url: str, executor: DagExecutor, report: StepReport, name: str) -> Delivery:
    """on_step for the step instance `name` (a step's id, or `id#n` in a loop's body)."""
    event = {
        "event": f"step.{'completed' if report.status == 'succeeded' else 'failed'}",
        **_base(executor),
        "status": report.status,
        "step": {
            "id": report.id,
            "status": report.status,
            "result": report.result,
            "error": report.error,
            "attempts": report.attempts,
            "duration_seconds": report.duration_seconds,
        },
    }
    if name != report.id:
        event["step"]["instance"] = name
    return Delivery(f"@webhook.on_step.{name}", Notification(type="webhook", url=url), event)
