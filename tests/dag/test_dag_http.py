"""http.request and webhook actions against a real HTTP server on the loopback interface."""

from __future__ import annotations

import json
import pickle
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from loopback import Web

from durable.dag._http import HttpActionError, HttpStatusError, http_request, send_webhook


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy from the environment must not sit between us and loopback.
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as http:
        yield http


async def test_get_parses_json_response_and_merges_query(
    web: Web, client: httpx.AsyncClient
) -> None:
    web.reply("/data", 200, "application/json; charset=utf-8", b'{"a": [1, 2]}')
    params = {"url": f"{web.url}/data?x=1", "query": {"y": 2, "z": ["p", "q"]}}
    result = await http_request(client, params)
    assert result["status"] == 200
    assert result["body"] == {"a": [1, 2]}
    assert result["headers"]["x-reply"] == "yes"
    assert all(name == name.lower() for name in result["headers"])
    assert web.last.method == "GET" and web.last.body == b""
    assert web.last.path == "/data?x=1&y=2&z=p&z=q"


async def test_text_response_is_returned_as_text(web: Web, client: httpx.AsyncClient) -> None:
    web.reply("/t", 201, "text/plain", b'{"looks": "like json"}')
    result = await http_request(client, {"url": f"{web.url}/t"})
    assert result == {
        "status": 201,
        "headers": result["headers"],
        "body": '{"looks": "like json"}',
    }


async def test_json_body_defaults_method_to_post(web: Web, client: httpx.AsyncClient) -> None:
    await http_request(client, {"url": web.url, "body": {"key": "value", "n": [1]}})
    assert web.last.method == "POST"
    assert web.last.headers["content-type"] == "application/json"
    assert json.loads(web.last.body) == {"key": "value", "n": [1]}


async def test_text_body_and_lowercase_method(web: Web, client: httpx.AsyncClient) -> None:
    await http_request(client, {"url": web.url, "method": "put", "body": "héllo"})
    assert web.last.method == "PUT"
    assert web.last.headers["content-type"] == "text/plain; charset=utf-8"
    assert web.last.body == "héllo".encode()


async def test_user_content_type_wins(web: Web, client: httpx.AsyncClient) -> None:
    params = {"url": web.url, "body": "a,b\n", "headers": {"Content-Type": "text/csv"}}
    await http_request(client, params)
    assert web.last.headers["content-type"] == "text/csv"


async def test_headers_and_idempotency_key_are_sent(web: Web, client: httpx.AsyncClient) -> None:
    params = {"url": web.url, "headers": {"Authorization": "Bearer token"}}
    await http_request(client, params, idempotency_key="run-1/charge/1")
    assert web.last.headers["authorization"] == "Bearer token"
    assert web.last.headers["idempotency-key"] == "run-1/charge/1"


async def test_user_idempotency_key_is_not_overridden(web: Web, client: httpx.AsyncClient) -> None:
    params = {"url": web.url, "headers": {"idempotency-key": "mine"}}
    await http_request(client, params, idempotency_key="engine")
    assert web.last.headers["idempotency-key"] == "mine"


async def test_non_2xx_raises_status_error(web: Web, client: httpx.AsyncClient) -> None:
    web.reply("/pay", 503, "text/plain", b"down for\nmaintenance")
    url = f"{web.url}/pay"
    with pytest.raises(HttpStatusError) as caught:
        await http_request(client, {"url": url, "body": {"amount": 1}})
    err = caught.value
    assert str(err) == f"POST {url} returned 503 Service Unavailable: down for maintenance"
    assert err.details == {
        "status": 503,
        "body": "down for\nmaintenance",
        "url": url,
        "method": "POST",
    }
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.details == err.details


async def test_status_error_body_is_truncated(web: Web, client: httpx.AsyncClient) -> None:
    web.reply("/big", 500, "text/plain", b"x" * 10_000)
    with pytest.raises(HttpStatusError) as caught:
        await http_request(client, {"url": f"{web.url}/big"})
    assert caught.value.status == 500
    assert caught.value.body == "x" * 4096
    assert len(str(caught.value)) < 300


async def test_connection_refused_is_an_action_error(
    dead_port: int, client: httpx.AsyncClient
) -> None:
    url = f"http://127.0.0.1:{dead_port}/x"
    with pytest.raises(HttpActionError, match=r"^GET http://127\.0\.0\.1:\d+/x: could not connect"):
        await http_request(client, {"url": url})


async def test_timeout_param_is_applied(client: httpx.AsyncClient) -> None:
    # Listening but never accepting: the connection completes in the kernel's backlog and
    # the request then waits for an answer that never comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/slow"
        with pytest.raises(HttpActionError, match=r"^GET .*/slow: timed out"):
            await http_request(client, {"url": url, "timeout": 0.2})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "http.request: params.url is required: set it to an http:// or https:// URL"),
        ({"url": 5}, "http.request: params.url must be a string URL, got int"),
        ({"url": "ftp://host/x"}, "must be an absolute http:// or https:// URL"),
        ({"url": "/relative"}, "must be an absolute http:// or https:// URL"),
        ({"url": "http://h", "method": "FETCH"}, "params.method must be one of DELETE, GET"),
        ({"url": "http://h", "headers": ["A"]}, "params.headers must be a mapping"),
        ({"url": "http://h", "headers": {"X-N": 5}}, "params.headers.X-N must be an ASCII"),
        ({"url": "http://h", "body": 5}, "params.body must be an object or array"),
        ({"url": "http://h", "timeout": 0}, "params.timeout must be a positive number"),
        ({"url": "http://h", "query": {"a": {"b": 1}}}, "params.query.a must be a string"),
        ({"url": "http://h", "body": {"n": float("nan")}}, "params.body cannot be encoded"),
    ],
)
async def test_bad_params_are_explained(
    params: dict[str, Any], message: str, client: httpx.AsyncClient
) -> None:
    with pytest.raises(HttpActionError) as caught:
        await http_request(client, params)
    assert message in str(caught.value)
    assert str(caught.value).startswith("http.request: ")


async def test_webhook_posts_payload_as_json(web: Web, client: httpx.AsyncClient) -> None:
    params = {
        "url": f"{web.url}/notify",
        "payload": {"event": "step-complete"},
        "headers": {"X-Signature": "abc"},
    }
    result = await send_webhook(client, params, idempotency_key="k1")
    assert result["status"] == 200 and result["body"] == {"ok": True}
    seen = web.last
    assert (seen.method, seen.path) == ("POST", "/notify")
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["x-signature"] == "abc"
    assert seen.headers["idempotency-key"] == "k1"
    assert json.loads(seen.body) == {"event": "step-complete"}


async def test_webhook_payload_defaults_to_empty_object(
    web: Web, client: httpx.AsyncClient
) -> None:
    await send_webhook(client, {"url": web.url})
    assert json.loads(web.last.body) == {}


async def test_webhook_errors(web: Web, client: httpx.AsyncClient) -> None:
    with pytest.raises(HttpActionError, match=r"^webhook: params\.url is required"):
        await send_webhook(client, {"payload": {}})
    web.reply("/gone", 410, "application/json", b'{"error": "gone"}')
    with pytest.raises(HttpStatusError) as caught:
        await send_webhook(client, {"url": f"{web.url}/gone"})
    assert caught.value.status == 410 and caught.value.body == '{"error": "gone"}'


async def test_a_response_body_over_the_limit_fails_the_action(
    web: Web, client: httpx.AsyncClient
) -> None:
    """The body is read as it arrives and given up past MAX_RESPONSE_BYTES (8 MiB): a huge or
    endless answer costs the worker 8 MiB, not all of it, and is recorded as a clear error."""
    from durable.dag._http import MAX_RESPONSE_BYTES

    assert MAX_RESPONSE_BYTES == 8 * 1024 * 1024
    web.reply("/huge", 200, "application/json", b"[" + b"1," * (5 * 1024 * 1024) + b"1]")
    url = f"{web.url}/huge"
    with pytest.raises(
        HttpActionError, match=r"^GET .*/huge: the response body is larger than 8 MiB"
    ):
        await http_request(client, {"url": url})
    web.reply("/big", 200, "text/plain; charset=latin-1", b"\xe9" * (7 * 1024 * 1024))
    result = await http_request(client, {"url": f"{web.url}/big"})
    assert result["body"] == "é" * (7 * 1024 * 1024)


async def test_a_huge_error_body_is_cut_in_the_error(web: Web, client: httpx.AsyncClient) -> None:
    web.reply("/hugerr", 500, "text/plain", b"y" * (20 * 1024 * 1024))
    with pytest.raises(HttpStatusError) as caught:
        await http_request(client, {"url": f"{web.url}/hugerr"})
    assert caught.value.status == 500 and caught.value.body == "y" * 4096
