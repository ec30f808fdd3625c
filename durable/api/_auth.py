"""Bearer tokens for the HTTP API: read-only and admin, from the environment or a TOML file.

    DURABLE_API_TOKEN=...        admin tokens (comma-separated): everything
    DURABLE_API_READ_TOKEN=...   read-only tokens: GET, and the POSTs that change nothing
    --tokens FILE                admin = ["..."]  read = ["..."]

Tokens are compared in constant time: the presented token's SHA-256 is compared with every
configured token's with hmac.compare_digest, all of them, so neither the position of a match
nor the length of a token shows in the timing. With no token configured the server is open,
and `durable serve` refuses to listen anywhere but loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

ADMIN_ENV = "DURABLE_API_TOKEN"
READ_ENV = "DURABLE_API_READ_TOKEN"


class TokenConfigError(ValueError):
    """A tokens file or variable that cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Tokens:
    admin: tuple[bytes, ...] = ()  # SHA-256 digests
    read: tuple[bytes, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.admin or self.read)

    def role(self, presented: str) -> str | None:
        """'admin', 'read' or None, with the same work whichever token (if any) matches."""
        digest = _digest(presented)
        admin = read = False
        for known in self.admin:
            admin |= hmac.compare_digest(digest, known)
        for known in self.read:
            read |= hmac.compare_digest(digest, known)
        return "admin" if admin else "read" if read else None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _split(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def load_tokens(file: str | None = None, environ: dict[str, str] | None = None) -> Tokens:
    env = os.environ if environ is None else environ
    admin = _split(env.get(ADMIN_ENV, ""))
    read = _split(env.get(READ_ENV, ""))
    if file is not None:
        try:
            data = tomllib.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenConfigError(f"cannot read tokens file {file}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise TokenConfigError(f"tokens file {file} is not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {"admin", "read"})
        if unknown:
            raise TokenConfigError(
                f"tokens file {file}: unknown key {unknown[0]!r}; use admin = [...] and "
                "read = [...]"
            )
        for key, into in (("admin", admin), ("read", read)):
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise TokenConfigError(
                    f"tokens file {file}: {key} must be a list of non-empty strings"
                )
            into.extend(value)
    short = [t for t in admin + read if len(t) < 16]
    if short:
        raise TokenConfigError(
            "API tokens must be at least 16 characters (a guessable token is no protection); "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return Tokens(tuple(_digest(t) for t in admin), tuple(_digest(t) for t in read))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, tokens: Tokens) -> str | None:
    """Why the server must not listen on `host` with these tokens, or None."""
    if tokens.configured or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} with no API token: anyone who can reach it could "
        f"start and cancel runs. Set {ADMIN_ENV} (and optionally {READ_ENV}) or pass "
        "--tokens FILE, or listen on 127.0.0.1"
    )


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The bearer token of the request, if it carries one."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Whether the request carries one of the server's admin tokens (none: never)."""
    tokens: Tokens = connection.app.state.tokens
    token = presented_token(connection)
    return bool(tokens.admin) and token is not None and tokens.role(token) == "admin"


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Every API route: a read token for reading, an admin token for anything that writes.

    A coroutine although it never awaits: Litestar runs a plain function guard in its thread
    pool, a thread hop per request: about a sixth of a loaded server's profile samples (py-spy)."""
    tokens: Tokens = connection.app.state.tokens
    if not tokens.configured or handler.opt.get("public"):
        return
    token = presented_token(connection)
    if token is None:
        raise NotAuthorizedException("this server needs an API token: Authorization: Bearer TOKEN")
    role = tokens.role(token)
    if role is None:
        raise NotAuthorizedException("the API token is not valid")
    # `read` routes (a query: a POST that changes nothing) take a read token too.
    writes = connection.scope.get("method", "GET") not in ("GET", "HEAD")
    if role != "admin" and writes and not handler.opt.get("read"):
        raise PermissionDeniedException(
            "a read-only token cannot change anything; use an admin token"
        )
