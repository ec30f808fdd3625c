"""External waits (ctx.wait_external): the completion token, the awaitable the workflow gets,
and what travels through the inbox.

The bottom of the runtime: it imports nothing else of it (the executor and the Context use it;
so does the client side, durable.interact._external).

A token is "dx1." + base64url(msgpack([run_id, pos, nonce])): self-describing, so completing
needs no lookup by token, and unguessable through the nonce (secrets.token_urlsafe(16),
recorded in ExternalStarted, so a replay hands out the same token). The store checks the nonce
in the conditional update that settles the wait (storage._completions).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import msgspec

from durable._errors import ErrorInfo, InvalidTokenError
from storage import NewInboxItem

TOKEN_PREFIX = "dx1."
MAX_TOKEN_CHARS = 1024
MAX_NAME_CHARS = 255
KIND = "external"  # the inbox items that carry an outcome


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def encode_token(run_id: str, pos: int, nonce: str) -> str:
    packed = msgspec.msgpack.encode([run_id, pos, nonce])
    return TOKEN_PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_token(token: object) -> tuple[str, int, str]:
    """(run_id, pos, nonce); InvalidTokenError for anything that is not a token."""
    if not isinstance(token, str):
        raise InvalidTokenError(f"a completion token is a string, not {type(token).__name__}")
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidTokenError(
            "not a completion token: it starts with 'dx1.' (hand over the token exactly as "
            "the workflow's ctx.wait_external(...).token gave it)"
        )
    body = token[len(TOKEN_PREFIX) :]
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        run_id, pos, nonce = msgspec.msgpack.decode(packed, type=tuple[str, int, str])
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidTokenError(
            "not a completion token: it is damaged or cut short (copy it whole)"
        ) from None
    if not run_id or pos < 0 or not nonce:
        raise InvalidTokenError("not a completion token: it names no external wait")
    return run_id, pos, nonce


class Outcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """An external wait's outcome as its inbox item carries it (msgpack): status "completed"
    (result: the encoded value), "failed" (error) or "timed_out"."""

    status: str
    result: bytes | None = None
    error: ErrorInfo | None = None


def outcome_item(run_id: str, pos: int, nonce: str, outcome: Outcome, now: float) -> NewInboxItem:
    """The item carrying a wait's outcome. Named by position and nonce: a run that continued
    as new (ctx.continue_as_new()) reuses positions, and an outcome of the previous history's
    wait must neither end the new wait at that position nor, by its dedupe key, keep the new
    wait's outcome out of the inbox."""
    return NewInboxItem(
        run_id,
        KIND,
        f"{pos}:{nonce}",
        msgspec.msgpack.encode(outcome),
        now,
        dedupe_key=f"{KIND}:{pos}:{nonce}",
    )


def item_wait(name: str) -> tuple[int, str] | None:
    """(position, nonce) of an outcome item's name (None: not one outcome_item made)."""
    pos, _, nonce = name.partition(":")
    return (int(pos), nonce) if pos.isdigit() and nonce else None


def decode_outcome(payload: bytes) -> Outcome:
    return msgspec.msgpack.decode(payload, type=Outcome)


class ExternalWait:
    """What ctx.wait_external() returns: hand `token` to the outside system (from a step),
    then `await` it for the result. It raises ExternalFailed if the outside failed it (app.fail)
    and TimeoutError if its timeout passed first. Awaiting it again gives the same outcome."""

    def __init__(self, token: str, name: str, wait: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._token = token
        self.name = name
        self._wait = wait
        self._outcome: tuple[bool, Any] | None = None  # (ok, value or exception)

    @property
    def token(self) -> str:
        return self._token

    async def result(self) -> Any:
        if self._outcome is None:
            try:
                value = await self._wait()
            except (Exception, TimeoutError) as exc:
                self._outcome = (False, exc)
                raise
            self._outcome = (True, value)
            return value
        ok, value = self._outcome
        if not ok:
            raise value
        return value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    def __repr__(self) -> str:
        return f"<ExternalWait {self.name!r}>"
