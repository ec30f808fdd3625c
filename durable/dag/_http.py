"""The built-in HTTP actions `http.request` and `webhook`.

Every failure comes out as one of two exceptions: `HttpStatusError` when the server answered
with a non-2xx status, `HttpActionError` for anything else (bad params, connection refused,
timeout). The executor records step errors by type and message, so a raw httpx exception
(whose type and text depend on the httpx version) must never escape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from durable._lazy import lazy_module

if TYPE_CHECKING:
    import httpx
else:
    httpx = lazy_module("httpx")  # loaded when first used

BODY_LIMIT = 4096  # what an HttpStatusError keeps of the response body
# The most of a 2xx response body http.request reads (as much as a JavaScript step's result):
# the body is read as it arrives, so a huge or endless answer costs this much, not all of it.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_MESSAGE_BODY = 200  # what of it goes into the one-line message
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUERY_SCALARS = (str, int, float, bool)


class HttpStatusError(Exception):
    """The server answered with a status outside 2xx."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.body = body[:BODY_LIMIT]
        reason = httpx.codes.get_reason_phrase(status)
        text = f"{method} {url} returned {status}{f' {reason}' if reason else ''}"
        snippet = " ".join(self.body[:_MESSAGE_BODY].split())  # keep the message one line
        super().__init__(f"{text}: {snippet}" if snippet else text)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call cls(message); errors may cross process boundaries.
        return (type(self), (self.method, self.url, self.status, self.body))

    @property
    def details(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "url": self.url, "method": self.method}


class HttpActionError(Exception):
    """Bad params, or the request never got an HTTP answer (refused, timed out, DNS...)."""


def _bad(action: str, message: str) -> HttpActionError:
    return HttpActionError(f"{action}: {message}")


def _url(action: str, params: Mapping[str, Any]) -> httpx.URL:
    raw = params.get("url")
    if raw is None or raw == "":
        raise _bad(action, "params.url is required: set it to an http:// or https:// URL")
    if not isinstance(raw, str):
        raise _bad(action, f"params.url must be a string URL, got {type(raw).__name__}")
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise _bad(action, f"params.url {raw!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _bad(action, f"params.url {raw!r} must be an absolute http:// or https:// URL")
    return url


def _headers(action: str, params: Mapping[str, Any]) -> dict[str, str]:
    raw = params.get("headers")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _bad(action, f"params.headers must be a mapping of name to string, got {raw!r}")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        # Checked here because httpx would fail later with a bare UnicodeEncodeError.
        if not isinstance(name, str) or not name or not name.isascii():
            raise _bad(action, f"params.headers: header name {name!r} must be an ASCII string")
        if not isinstance(value, str) or not value.isascii():
            raise _bad(
                action,
                f"params.headers.{name} must be an ASCII string, got {value!r}"
                " (quote numbers in YAML)",
            )
        headers[name] = value
    return headers


def _timeout(action: str, params: Mapping[str, Any], client: httpx.AsyncClient) -> httpx.Timeout:
    raw = params.get("timeout")
    if raw is None:
        return client.timeout
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise _bad(action, f"params.timeout must be a positive number of seconds, got {raw!r}")
    return httpx.Timeout(float(raw))


def _query(action: str, params: Mapping[str, Any]) -> dict[str, Any]:
    raw = params.get("query")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _bad(action, f"params.query must be a mapping of name to value, got {raw!r}")
    for name, value in raw.items():
        values = value if isinstance(value, list | tuple) else [value]
        if not isinstance(name, str) or not all(isinstance(v, _QUERY_SCALARS) for v in values):
            raise _bad(
                action,
                f"params.query.{name} must be a string, number, boolean or a list of them,"
                f" got {value!r}",
            )
    return dict(raw)


def _encode_json(action: str, what: str, value: Any) -> bytes:
    try:
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise _bad(action, f"{what} cannot be encoded as JSON: {exc}") from None


def _has(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def _decode(response: httpx.Response, body: bytes) -> Any:
    kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(body)
        except ValueError:
            pass  # a server that lies about its content type still gets its text recorded
    return _text(response, body)


def _text(response: httpx.Response, body: bytes) -> str:
    try:
        return body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


async def _read(response: httpx.Response, most: int) -> tuple[bytes, bool]:
    """At most `most` bytes of the body, read as they arrive; and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > most:
            return b"".join(chunks)[:most], True
    return b"".join(chunks), False


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes | None,
    timeout: httpx.Timeout,
    idempotency_key: str | None,
) -> dict[str, Any]:
    if idempotency_key is not None and not _has(headers, "idempotency-key"):
        headers = {**headers, "Idempotency-Key": idempotency_key}
    shown = str(url)
    try:
        async with client.stream(
            method, url, headers=headers, content=content, timeout=timeout
        ) as response:
            ok = 200 <= response.status_code < 300
            body, more = await _read(response, MAX_RESPONSE_BYTES if ok else BODY_LIMIT)
    except httpx.TimeoutException as exc:
        raise HttpActionError(f"{method} {shown}: timed out ({type(exc).__name__})") from exc
    except httpx.ConnectError as exc:
        raise HttpActionError(f"{method} {shown}: could not connect: {exc}") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise HttpActionError(f"{method} {shown}: {type(exc).__name__}: {exc}") from exc
    if not ok:
        raise HttpStatusError(method, shown, response.status_code, _text(response, body))
    if more:
        raise HttpActionError(
            f"{method} {shown}: the response body is larger than "
            f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MiB, the most http.request reads; "
            "ask the server for less (a page, a range, a filter), or fetch it in a "
            "function: step that stores it elsewhere and returns a reference"
        )
    return {
        "status": response.status_code,
        # items() lowercases names and joins repeated headers with ", ".
        "headers": dict(response.headers.items()),
        "body": _decode(response, body),
    }


async def http_request(
    client: httpx.AsyncClient,
    params: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The `http.request` action: returns {"status", "headers", "body"} of a 2xx answer."""
    action = "http.request"
    url = _url(action, params)
    headers = _headers(action, params)
    body = params.get("body")
    method = params.get("method") or ("GET" if body is None else "POST")
    if not isinstance(method, str) or method.upper() not in _METHODS:
        allowed = ", ".join(sorted(_METHODS))
        raise _bad(action, f"params.method must be one of {allowed}, got {method!r}")
    method = method.upper()
    content: bytes | None = None
    if isinstance(body, str):
        content = body.encode()
        if not _has(headers, "content-type"):
            headers["Content-Type"] = "text/plain; charset=utf-8"
    elif isinstance(body, Mapping | list | tuple):
        content = _encode_json(action, "params.body", body)
        if not _has(headers, "content-type"):
            headers["Content-Type"] = "application/json"
    elif body is not None:
        raise _bad(
            action,
            f"params.body must be an object or array (sent as JSON) or a string (sent as"
            f" text), got {type(body).__name__}",
        )
    query = _query(action, params)
    # httpx's params= would replace a query already in the URL; merging keeps both.
    url = url.copy_merge_params(query) if query else url
    timeout = _timeout(action, params, client)
    return await _send(client, method, url, headers, content, timeout, idempotency_key)


async def send_webhook(
    client: httpx.AsyncClient,
    params: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The `webhook` action: POST `payload` (default {}) as JSON to `url`."""
    action = "webhook"
    url = _url(action, params)
    headers = _headers(action, params)
    payload = params.get("payload")
    content = _encode_json(action, "params.payload", {} if payload is None else payload)
    if not _has(headers, "content-type"):
        headers["Content-Type"] = "application/json"
    timeout = _timeout(action, params, client)
    return await _send(client, "POST", url, headers, content, timeout, idempotency_key)
