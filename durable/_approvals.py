"""Approvals of agent tool calls, as a run's log and inbox hold them.

A durable agent (durable.agents) whose model asks for a tool that needs approval (Pydantic
AI's `requires_approval=True`, or a tool raising `ApprovalRequired`) records the calls in one
step, `<agent>.approval_request`, whose result is

    {"kind": "approval_request", "agent": "ops", "position": 3,
     "requests": [{"tool_call_id": "c1", "tool_name": "delete", "args": {...}}, ...]}

and then waits for one signal per call, named `approval:<position>:<index>` (the request
step's position, the call's index in it): names no two requests share, even when a model
reuses a tool call id. A decision is that signal, with the payload
`{"approved": bool, "reason": str | None, "decision_id": str}`, sent with the signal's name as
its inbox dedupe key.

This module knows nothing of Pydantic AI: it reads the requests and decisions back for the
client (`approvals()`), tells which decision a request got, and sends one. The first decision a
request's signal received is the one its wait takes (signals of one name reach the waits in
order): a later one is a leftover nobody waits for, never a second effect.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from durable._codec import decode_value, encode_value
from durable._errors import ApprovalError, RunNotFoundError
from durable._events import LoggedEvent, SignalReceived, StepCompleted, StepStarted, decode_record
from storage import FINAL_STATUSES, InboxItem, NewInboxItem, Store

REQUEST_KIND = "approval_request"
REQUEST_STEP_SUFFIX = "." + REQUEST_KIND
SIGNAL_PREFIX = "approval:"
DENIED_BY_DEFAULT = "The tool call was denied."


def signal_name(position: int, index: int) -> str:
    """The signal deciding call `index` of the approval request step at `position`."""
    return f"{SIGNAL_PREFIX}{position}:{index}"


class Approval(msgspec.Struct, frozen=True):
    """An agent's tool call that needed a human's approval, and what was decided.

    status: "pending" (no decision yet), "approved" or "denied". A decision sent but not yet
    taken by a worker counts as decided: it is durable, and the run takes it when it continues.
    """

    run_id: str
    tool_call_id: str
    tool_name: str
    args: Any
    agent: str
    requested_at: dt.datetime
    status: str
    reason: str | None = None
    decided_at: dt.datetime | None = None
    # Where it is recorded: the position of the `<agent>.approval_request` step, and the
    # signal that decides it (`durable signal RUN approval:3:0 --data '{"approved": true}'`).
    position: int = 0
    signal: str = ""

    @property
    def decided(self) -> bool:
        return self.status != "pending"


class Decision(msgspec.Struct, frozen=True):
    approved: bool
    reason: str | None
    decision_id: str
    at: float


def interpret(payload: Any) -> tuple[bool, str | None]:
    """(approved, reason) of a decision's payload. Sent by hand (`durable signal`), it may be
    anything: a bare true/false decides too; anything else denies, saying why, since running
    a tool nobody approved is the one outcome that must not happen by accident."""
    if isinstance(payload, bool):
        return payload, None
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        reason = payload.get("reason")
        return payload["approved"], reason if isinstance(reason, str) and reason else None
    return False, f"the decision {payload!r} is not true/false nor {{'approved': bool}}"


def _decision(payload: bytes, at: float) -> Decision:
    try:
        value = decode_value(payload)
    except Exception:  # a hand-sent payload the codec refuses still decides: a denial
        value = None
    approved, reason = interpret(value)
    decision_id = value.get("decision_id") if isinstance(value, dict) else None
    return Decision(approved, reason, decision_id if isinstance(decision_id, str) else "", at)


def decisions_of(events: list[LoggedEvent], inbox: list[InboxItem]) -> dict[str, Decision]:
    """The decision each approval signal got: the first received (log order), else the
    oldest still in the inbox."""
    found: dict[str, Decision] = {}
    for logged in events:
        event = logged.event
        if isinstance(event, SignalReceived) and event.name.startswith(SIGNAL_PREFIX):
            found.setdefault(event.name, _decision(bytes(event.payload), logged.at))
    for item in sorted(inbox, key=lambda i: i.id):
        if item.kind == "signal" and item.name.startswith(SIGNAL_PREFIX):
            found.setdefault(item.name, _decision(item.payload, item.created_at))
    return found


def approvals_of(run_id: str, events: list[LoggedEvent], inbox: list[InboxItem]) -> list[Approval]:
    """Every approval requested in the run, in the order requested, with its decision."""
    decisions = decisions_of(events, inbox)
    started: dict[int, tuple[str, float]] = {}
    out: list[Approval] = []
    for logged in events:
        event = logged.event
        if isinstance(event, StepStarted) and event.name.endswith(REQUEST_STEP_SUFFIX):
            started.setdefault(event.pos, (event.name, logged.at))
        elif isinstance(event, StepCompleted) and event.pos in started:
            _, at = started[event.pos]
            out.extend(_requests(run_id, event, at, decisions))
    return out


def _requests(
    run_id: str, event: StepCompleted, at: float, decisions: dict[str, Decision]
) -> list[Approval]:
    recorded = decode_value(event.result)
    if not isinstance(recorded, dict) or recorded.get("kind") != REQUEST_KIND:
        return []  # a step of the user's that happens to end with the same suffix
    out: list[Approval] = []
    for index, request in enumerate(recorded.get("requests") or []):
        signal = signal_name(event.pos, index)
        decision = decisions.get(signal)
        status = "pending"
        if decision is not None:
            status = "approved" if decision.approved else "denied"
        out.append(
            Approval(
                run_id=run_id,
                tool_call_id=str(request.get("tool_call_id")),
                tool_name=str(request.get("tool_name")),
                args=request.get("args"),
                agent=str(recorded.get("agent")),
                requested_at=_ts(at),
                status=status,
                reason=decision.reason if decision is not None else None,
                decided_at=_ts(decision.at) if decision is not None else None,
                position=event.pos,
                signal=signal,
            )
        )
    return out


def _ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


async def read_approvals(store: Store, run_id: str) -> list[Approval]:
    if await store.get_run(run_id) is None:
        raise RunNotFoundError(run_id)
    events, inbox = await _read(store, run_id)
    return approvals_of(run_id, events, inbox)


async def _read(store: Store, run_id: str) -> tuple[list[LoggedEvent], list[InboxItem]]:
    """The run's log and inbox: the inbox first, since items move from it to the log (an item
    taken in between is then seen in both, never in neither)."""
    inbox = await store.read_inbox([run_id])
    events = [decode_record(r) for r in await store.read_events(run_id)]
    return events, inbox


async def send_decision(
    store: Store,
    run_id: str,
    tool_call_id: str,
    approved: bool,
    reason: str | None,
    sent: Callable[[], object] | None = None,
) -> Approval:
    """Decide the pending call `tool_call_id` of the run (see Client.decide); `sent` is called
    once the decision is durable (to wake an in-process worker)."""
    known = await read_approvals(store, run_id)
    mine = [a for a in known if a.tool_call_id == tool_call_id]
    target = next((a for a in mine if not a.decided), None)
    if target is None:
        waiting = ", ".join(repr(a.tool_call_id) for a in known if not a.decided) or "none"
        if not mine:
            what = f"run {run_id!r} has no approval request for tool call {tool_call_id!r}"
        else:
            last = mine[-1]
            why = f" ({last.reason})" if last.reason else ""
            what = f"tool call {tool_call_id!r} of run {run_id!r} was already {last.status}{why}"
        raise ApprovalError(run_id, tool_call_id, f"{what}; pending: {waiting}")
    record = await store.get_run(run_id)
    if record is None:
        raise RunNotFoundError(run_id)
    if record.status in FINAL_STATUSES:
        raise ApprovalError(run_id, tool_call_id, f"run {run_id!r} already ended {record.status}")
    decision_id = uuid.uuid4().hex
    payload = {"approved": approved, "reason": reason, "decision_id": decision_id}
    data = encode_value(payload, "an approval decision")
    # Keyed by the request's signal: of decisions sent at once, the inbox keeps one.
    item = NewInboxItem(
        run_id, "signal", target.signal, data, time.time(), dedupe_key=target.signal
    )
    stored = await store.send(item)
    if sent is not None:
        sent()
    # Ours is taken unless another decision got there first: one still in the inbox under the
    # same key (send returned it), or one already taken into the log (the key is free again
    # once its item is consumed, so that one is seen only by reading the log).
    events, inbox = await _read(store, run_id)
    winner = decisions_of(events, inbox).get(target.signal)
    if stored.payload != data or winner is None or winner.decision_id != decision_id:
        status = "approved" if winner is not None and winner.approved else "denied"
        raise ApprovalError(
            run_id,
            tool_call_id,
            f"tool call {tool_call_id!r} of run {run_id!r} was already {status} "
            "by another decision sent at the same time",
        )
    return next(a for a in approvals_of(run_id, events, inbox) if a.signal == target.signal)
