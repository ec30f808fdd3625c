"""Only the API's own clients may reach it, never a web page a local browser happens to open.

Without tokens the API listens on loopback only, but every web page a browser on that machine
opens can send requests to loopback too. Three rules keep them out:

* Host. Every request must name an address this server serves (the bind address, the loopback
  names for a loopback bind, or a name the operator allowed with --allowed-host): a page on a
  name the attacker controls that resolves to 127.0.0.1 (DNS rebinding) is refused, reads too.
* Content-Type. Every state-changing request (POST, PUT, PATCH, DELETE) with a body, or with
  any Content-Type, must say `application/json`. A browser sends a cross-site request without
  asking the server first (a CORS preflight) only for form types and text/plain; JSON needs
  the preflight, which this server never grants. (A request with neither body nor type, e.g.
  a cancel without a reason, carries nothing to misread; a browser sends Origin with it.)
* Origin. A state-changing request with an `Origin` must come from this server's own origin
  (the dashboard) or from a name the operator allowed; none (curl, scripts, the SDK) is fine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException, PermissionDeniedException
from litestar.status_codes import HTTP_415_UNSUPPORTED_MEDIA_TYPE
from litestar.types import ASGIApp, Receive, Scope, Send

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
DEFAULT_PORTS = {"http": 80, "https": 443}

Address = tuple[str, int | None]  # (host, port); port None: any port


class HostSyntaxError(ValueError):
    """An --allowed-host value that is not a host name or address, with an optional port."""


def split_host(value: str) -> Address | None:
    """`name`, `name:port`, `1.2.3.4:port`, `[::1]:port` as (host, port); None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:  # a name, or a bare IPv6 address
        host, port_text = value, None
    if not host or any(c in host for c in "/@?#\\ "):
        return None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _loopback(host: str) -> bool:
    return host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback)


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """The names a request's Host may give, and the operator's extra names (also origins)."""

    served: frozenset[Address] = frozenset((name, None) for name in LOOPBACK_NAMES)
    extra: frozenset[Address] = frozenset()
    any_ip: bool = False  # a wildcard bind: any address literal (no name can be rebound)

    @classmethod
    def for_bind(cls, host: str, port: int, extra: Iterable[str] = ()) -> AllowedHosts:
        """The addresses a server bound to host:port serves, plus the operator's `extra`
        names (`name` or `name:port`; HostSyntaxError if one is neither)."""
        bound = host.strip("[]").lower()
        on_port = port or None  # port 0: the system picks one, unknown here
        served = {(name, on_port) for name in LOOPBACK_NAMES} if _loopback(bound) else set()
        if bound in WILDCARDS:
            served |= {(name, on_port) for name in LOOPBACK_NAMES}
        else:
            served.add((bound, on_port))
        allowed = set()
        for value in extra:
            address = split_host(value)
            if address is None:
                raise HostSyntaxError(
                    f"--allowed-host {value!r} is not a host name or address with an optional "
                    "port (e.g. durable.example.com or durable.example.com:8443)"
                )
            allowed.add(address)
        return cls(frozenset(served), frozenset(allowed), any_ip=bound in WILDCARDS)

    def serves(self, address: Address) -> bool:
        host, port = address
        if self.any_ip and _is_ip(host):
            return True
        return any(host == h and (p is None or p == port) for h, p in self.served | self.extra)

    def allows_origin(self, address: Address) -> bool:
        host, port = address
        return any(host == h and (p is None or p == port) for h, p in self.extra)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _origin_address(origin: str) -> Address | None:
    parts = urlsplit(origin)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _same(origin: Address, host: Address) -> bool:
    """The origin names the host the request was sent to (a Host without a port: the default
    port of the origin's scheme, as a browser would have left it out)."""
    return (
        origin[0] == host[0]
        and (host[1] is None or origin[1] == host[1])
        and (host[1] is not None or origin[1] in DEFAULT_PORTS.values())
    )


def check_request(scope: Scope, hosts: AllowedHosts) -> None:
    """Raise the 400/403/415 this request gets, or return if it may go on."""
    raw_host = _header(scope, b"host")
    host = split_host(raw_host) if raw_host is not None else None
    if host is None or not hosts.serves(host):
        named = "no Host header" if raw_host is None else f"Host {raw_host!r}"
        raise ClientException(
            f"refused: {named} is not an address this server serves (a web page on another "
            "name resolving here would be DNS rebinding); use the address the server "
            "listens on, or start it with --allowed-host NAME for a name that reaches it "
            "(e.g. a reverse proxy's)"
        )
    if scope["type"] != ScopeType.HTTP or scope.get("method") not in UNSAFE:
        return
    origin = _header(scope, b"origin")
    if origin is not None:
        address = _origin_address(origin)
        if address is None or not (_same(address, host) or hosts.allows_origin(address)):
            raise PermissionDeniedException(
                f"cross-origin request refused: Origin {origin!r} is not this server's; "
                "only the dashboard served here, and clients that send no Origin, may "
                "change anything (a proxy's public name: start the server with "
                "--allowed-host NAME)"
            )
    kind = _header(scope, b"content-type")
    if kind is None and _bodiless(scope):
        return  # nothing to interpret (e.g. a cancel without a reason)
    if (kind or "").partition(";")[0].strip().lower() != "application/json":
        got = "no Content-Type" if kind is None else f"Content-Type {kind!r}"
        raise HTTPException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the body as JSON with Content-Type: application/json (got {got}); "
            "other types are refused so that web pages on other sites cannot post here",
        )


def _bodiless(scope: Scope) -> bool:
    """HTTP/1.1 framing: a request has a body only with Content-Length or Transfer-Encoding."""
    length = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is None and length in (None, "0")


class SameOrigin:
    """ASGI middleware applying `check_request` before anything else sees the request."""

    def __init__(self, app: ASGIApp, hosts: AllowedHosts) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            check_request(scope, self.hosts)
        await self.app(scope, receive, send)
