"""Completing external waits (ctx.wait_external) from outside, in any process.

complete()/fail() decode the token, then settle the wait's row in one conditional transaction
that also sends the outcome to the run's inbox (storage._completions): of a completion, a
failure and the wait's own timeout, exactly one commits; the others get
ExternalAlreadySettledError saying which one won. The worker holding the run (any process;
PostgreSQL announces the run at commit) records the outcome as ExternalCompleted.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from durable._codec import encode_value, error_info
from durable._errors import (
    ErrorInfo,
    ExternalAlreadySettledError,
    InvalidTokenError,
)
from durable.runtime._external import Outcome, decode_token, encode_token, outcome_item
from storage import FINAL_STATUSES, CompletionRecord

if TYPE_CHECKING:
    from durable._client import Client

MAX_MESSAGE_CHARS = 64 * 1024
_SAID = {"completed": "completed", "failed": "failed", "timed_out": "timed out"}


class ExternalWaitInfo(msgspec.Struct, frozen=True):
    """An external wait as read-only views show it: never its token."""

    pos: int
    name: str
    status: str  # waiting, completed, failed, timed_out
    deadline: float | None
    created_at: float
    settled_at: float | None


async def complete(client: Client, token: str, result: Any = None) -> None:
    """Complete the external wait `token` names with `result` (any value the codec takes)."""
    run_id, pos, nonce = decode_token(token)
    data = encode_value(result, "the result of an external wait")
    await _settle(client, run_id, pos, nonce, Outcome("completed", result=data))


async def fail(
    client: Client, token: str, error: str | BaseException, *, type: str | None = None
) -> None:
    """Fail the external wait `token` names: its await raises ExternalFailed with `error` (a
    message, or an exception recorded like a step's), typed `type` if given."""
    run_id, pos, nonce = decode_token(token)
    if isinstance(error, BaseException):
        info = error_info(error)
        if type is not None:
            info = msgspec.structs.replace(info, type=type)
    elif isinstance(error, str):
        if len(error) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the error message is longer than {MAX_MESSAGE_CHARS} characters")
        info = ErrorInfo(type or "durable.ExternalFailed", error)
    else:
        raise TypeError(
            f"fail() takes a message (str) or an exception, not {error.__class__.__name__}"
        )
    await _settle(client, run_id, pos, nonce, Outcome("failed", error=info))


async def _settle(client: Client, run_id: str, pos: int, nonce: str, outcome: Outcome) -> None:
    now = time.time()
    item = outcome_item(run_id, pos, nonce, outcome, now)
    settled = await client.store.settle_completion(
        run_id, pos, nonce, status=outcome.status, now=now, item=item
    )
    if settled.won:
        client.notifier.notify(run_id)
        if client.worker is not None:
            client.worker.wake_inbox()  # it may be executing the run right here
            client.worker.wake()  # or may claim it now that it is ready
        return
    rec = settled.record
    if rec is None or not hmac.compare_digest(rec.nonce.encode(), nonce.encode()):
        if settled.run_status is None:
            raise InvalidTokenError(
                f"the completion token names run {run_id!r}, which this database does not "
                "have (another database's token, or the run was pruned)"
            )
        raise InvalidTokenError(
            f"the completion token names no external wait of run {run_id!r} (a token of "
            "another run's copy, or altered)"
        )
    if rec.status != "waiting":
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec.settled_at or now))
        raise ExternalAlreadySettledError(
            f"external wait {rec.name!r} of run {run_id!r} was already "
            f"{_SAID.get(rec.status, rec.status)} at {when}: this "
            f"{'completion' if outcome.status == 'completed' else 'failure'} changed nothing",
            rec.status,
        )
    assert settled.run_status in FINAL_STATUSES
    raise ExternalAlreadySettledError(
        f"run {run_id!r} already ended {settled.run_status}: its external wait {rec.name!r} "
        "takes no completion any more",
        "run ended",
    )


async def list_external(client: Client, run_id: str) -> list[ExternalWaitInfo]:
    """The run's external waits (tokens left out: a read-only view must not be able to
    complete them)."""
    rows = await client.store.list_completions(run_id)
    record = await client.store.get_run(run_id)
    ended = record is not None and record.status in FINAL_STATUSES
    return [_info(r, ended) for r in rows]


def _info(row: CompletionRecord, run_ended: bool) -> ExternalWaitInfo:
    status = "abandoned" if run_ended and row.status == "waiting" else row.status
    return ExternalWaitInfo(row.pos, row.name, status, row.deadline, row.created_at, row.settled_at)


# -- keeping tokens out of read-only views ----------------------------------------------------

REDACTED = "<redacted>"
T = TypeVar("T")


def secrets_of(run_id: str, nonces: Iterable[tuple[int, str]]) -> list[str]:
    """What a read-only view of the run must not show: each external wait's token (a step's
    input holds it when the workflow hands it over), and its nonce (ExternalStarted records
    it; with the run id and position it makes the token)."""
    found: list[str] = []
    for pos, nonce in nonces:
        found += [encode_token(run_id, pos, nonce), nonce]
    return found


def redact(value: T, secrets: Sequence[str]) -> T:
    """`value` (a msgspec Struct of the HTTP API) with every secret replaced by REDACTED. The
    secrets are URL-safe base64 text: JSON never escapes them, so a plain replace finds them."""
    if not secrets:
        return value
    raw = msgspec.json.encode(value)
    for secret in secrets:
        raw = raw.replace(secret.encode(), REDACTED.encode())
    decoded: T = msgspec.json.decode(raw, type=type(value))
    return decoded
