"""Request bodies are bounded before anything parses them: size and nesting depth.

Decoders, validators and the engine's own encoders recurse once per level of nesting, so JSON
nested a thousand deep would exhaust the interpreter's stack somewhere past the handler and
answer a 500. The body of every state-changing request is read here (up to the size limit),
its nesting measured without parsing it, and refused with a 400 beyond MAX_JSON_DEPTH.
"""

from __future__ import annotations

import re
from itertools import accumulate

from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from ._sameorigin import UNSAFE

MAX_JSON_DEPTH = 100  # levels of arrays/objects in a request body

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings not counted);
    linear in the size, without parsing it, so it works on any input."""
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodyLimits:
    """ASGI middleware: reads a state-changing request's body (413 over `max_body` bytes),
    refuses it if nested over `max_depth` (400), then hands it on unchanged."""

    def __init__(self, app: ASGIApp, max_body: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth

    def _too_large(self) -> ClientException:
        return ClientException(
            f"the request body is over this server's limit of {self.max_body} bytes "
            "(durable serve --max-body)",
            status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("method") not in UNSAFE:
            await self.app(scope, receive, send)
            return
        announced = _content_length(scope)
        if announced is not None and announced > self.max_body:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body) > self.max_depth:
            raise ClientException(
                f"the request body is nested more than {self.max_depth} levels deep "
                "(arrays and objects inside each other); flatten it"
            )
        replayed = False

        async def replay() -> ReceiveMessage:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            event: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return event

        await self.app(scope, replay, send)
