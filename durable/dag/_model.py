"""The one internal model every DAG definition (Python builder, YAML, JSON) is validated into.

Frozen msgspec Structs, so a definition can be encoded canonically (for the fingerprint that
versions it) and never changes under a scheduler that is reading it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

StepKind = Literal["script", "javascript", "python", "action", "noop"]
TriggerRule = Literal[
    "all_success", "all_done", "one_success", "one_failed", "none_failed", "min_success"
]
BackoffKind = Literal["fixed", "linear", "exponential"]
NotificationType = Literal["slack", "email", "pagerduty", "webhook"]

BUILTIN_ACTIONS: frozenset[str] = frozenset(
    {"http.request", "delay", "transform", "condition", "webhook"}
)


class FieldSpot(msgspec.Struct, frozen=True):
    """Where one field was written: its path in the source document and its line."""

    path: str
    line: int | None = None


class Location(msgspec.Struct, frozen=True):
    """Where a step (or the definition) came from.

    `fields` maps model-field keys ("depends_on", "depends_on[1]", "params.url", ...) to the
    spot they were written at, so validation of the model (which knows nothing of YAML or
    JSON) can still point at the exact line of the offending value.
    """

    file: str | None = None
    line: int | None = None
    path: str = "$"
    fields: dict[str, FieldSpot] = {}

    def spot(self, key: str) -> FieldSpot:
        """The most precise known spot for `key`, falling back to enclosing fields."""
        probe = key
        while probe:
            found = self.fields.get(probe)
            if found is not None:
                return found
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return FieldSpot(self.path, self.line)


class RetryPolicy(msgspec.Struct, frozen=True):
    """`max_attempts` counts the first attempt too, so 1 means "never retry"."""

    max_attempts: int = 1
    initial_delay_ms: int = 1000
    backoff: BackoffKind = "exponential"
    multiplier: float = 2.0
    max_delay_ms: int | None = None


class Resources(msgspec.Struct, frozen=True, omit_defaults=True):
    cpu_cores: float | None = None
    memory_mb: int | None = None
    disk_gb: float | None = None


class Loop(msgspec.Struct, frozen=True, omit_defaults=True):
    """Repeat the step until `until` (a JavaScript expression) holds, at most max_iterations.

    With a `body` (ids of other steps of the definition) the step is a group: each iteration
    runs that sub-graph, and `until` is checked once the whole iteration has finished.
    omit_defaults keeps the fingerprint of body-less loops what it was before `body` existed.
    """

    until: str
    max_iterations: int
    body: tuple[str, ...] = ()


class DagStep(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str | None = None
    kind: StepKind = "noop"
    # Exactly one of script/code/function/action is set, according to `kind`.
    script: str | None = None
    code: str | None = None
    function: str | None = None  # "module:function" for python steps
    action: str | None = None
    params: dict[str, Any] = {}
    depends_on: tuple[str, ...] = ()
    trigger_rule: TriggerRule = "all_success"
    min_success: int | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout_seconds: float | None = None
    environment: dict[str, str] = {}
    resources: Resources = Resources()
    condition: str | None = None
    skip_if: str | None = None
    matrix: dict[str, tuple[Any, ...]] = {}
    parallelism: int | None = None
    loop: Loop | None = None
    on_error: str | None = None  # id of the fallback step run when this one fails for good
    # A queue (durable.queues) each instance of the step waits in: it runs as a child run
    # started in that queue, so the queue's limits hold across runs and workers (_queued).
    queue: str | None = None
    # A script inherits the worker's environment (minus the engine's variables) unless this,
    # or else the definition's, is False; None: the definition decides.
    inherit_environment: bool | None = None
    location: Location = Location()


class Notification(msgspec.Struct, frozen=True, omit_defaults=True):
    type: NotificationType
    webhook: str | None = None
    url: str | None = None
    recipients: tuple[str, ...] = ()
    subject: str | None = None
    message: str | None = None
    integration_key: str | None = None
    location: Location = Location()


class Notifications(msgspec.Struct, frozen=True):
    on_success: tuple[Notification, ...] = ()
    on_failure: tuple[Notification, ...] = ()


class Webhooks(msgspec.Struct, frozen=True, omit_defaults=True):
    on_complete: str | None = None
    on_failure: str | None = None
    on_step: str | None = None


class DagDefinition(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str = "1"
    title: str | None = None
    description: str | None = None
    steps: tuple[DagStep, ...] = ()  # in declaration order: it breaks scheduling ties
    notifications: Notifications = Notifications()
    webhooks: Webhooks = Webhooks()
    parallelism: int | None = None
    # Values steps can read as `ctx.config` (JavaScript) or `config` (expressions).
    config: dict[str, Any] = {}
    inherit_environment: bool | None = None  # the steps' default; None means True
    # `schedule:` (durable.schedules): a cron text or {cron, timezone, ...}, checked when
    # parsed. Not behaviour of a run: left out of the fingerprint and the canonical JSON.
    schedule: str | dict[str, Any] | None = None
    # `queues:` (durable.queues): name -> limits as app.queue takes them (concurrency,
    # worker_concurrency, rate_limit [n, seconds], partition_concurrency), checked when parsed;
    # `queue:`: the queue runs of the definition start in unless the start names one. Neither
    # is behaviour of a run: both are left out of the fingerprint, like `schedule:`.
    queues: dict[str, dict[str, Any]] = {}
    queue: str | None = None
    source: Location = Location()

    def step(self, step_id: str) -> DagStep:
        for candidate in self.steps:
            if candidate.id == step_id:
                return candidate
        raise KeyError(step_id)

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of everything that changes behaviour.

        Where a definition came from (file, lines) is left out, so moving or reformatting a
        file keeps its version; dict keys are sorted by `order="sorted"`, so key order in the
        source does not matter either.
        """
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def canonical_json(self) -> bytes:
        """Everything that changes behaviour, canonically: what the fingerprint hashes, and
        what a run records of a definition stored nowhere else (decodable into a
        DagDefinition, without its source locations)."""
        payload = msgspec.to_builtins(self, order="sorted")
        _strip_locations(payload)
        _strip_unset(payload)
        return msgspec.json.encode(payload, order="sorted")


def _strip_unset(payload: dict[str, Any]) -> None:
    # Options added later, left out while unset: older definitions keep their fingerprint.
    for holder in (payload, *payload.get("steps", [])):
        if holder.get("inherit_environment", False) is None:
            del holder["inherit_environment"]
        if holder.get("queue", False) is None:
            del holder["queue"]


def _strip_locations(payload: dict[str, Any]) -> None:
    # Structural, not a blind walk: user params may well contain a key named "source".
    payload.pop("source", None)
    payload.pop("schedule", None)
    payload.pop("queues", None)
    payload.pop("queue", None)
    for step in payload.get("steps", []):
        step.pop("location", None)
    for kind in ("on_success", "on_failure"):
        for note in payload.get("notifications", {}).get(kind, []):
            note.pop("location", None)
