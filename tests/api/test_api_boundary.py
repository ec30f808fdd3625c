"""The API's boundary rules as pure functions, without a server: which Host names a server
accepts, which Origins may change anything, which requests need a JSON Content-Type, and how
deep a body nests. The same rules through a real server: test_api_cross_site, test_api_limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.exceptions import HTTPException
from serving import server_env

from durable.api import AllowedHosts, HostSyntaxError, json_depth
from durable.api._sameorigin import check_request, split_host


def scope(method: str, headers: dict[str, str]) -> Any:
    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
    return {"type": "http", "method": method, "headers": raw}


def status(hosts: AllowedHosts, method: str, **headers: str) -> int:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    try:
        check_request(scope(method, named), hosts)
    except HTTPException as exc:
        return exc.status_code
    return 200


def test_host_syntax() -> None:
    assert split_host("LocalHost:3000") == ("localhost", 3000)
    assert split_host("[::1]:8080") == ("::1", 8080)
    assert split_host("::1") == ("::1", None)
    assert split_host("durable.example.com") == ("durable.example.com", None)
    for bad in ("", ":80", "a:0", "a:65536", "a:x", "[::1", "[::1]x", "a/b:1", "u@h:1"):
        assert split_host(bad) is None, bad


def test_a_loopback_bind_serves_its_port_under_every_loopback_name() -> None:
    hosts = AllowedHosts.for_bind("127.0.0.1", 3000)
    for host in ("127.0.0.1:3000", "localhost:3000", "[::1]:3000", "LOCALHOST:3000"):
        assert status(hosts, "GET", host=host) == 200, host
    for host in ("127.0.0.1:3001", "evil.example:3000", "127.0.0.2:3000", "localhost.evil:3000"):
        assert status(hosts, "GET", host=host) == 400, host
    assert status(hosts, "GET") == 400  # no Host at all


def test_a_wildcard_bind_serves_any_address_but_no_unknown_name() -> None:
    hosts = AllowedHosts.for_bind("0.0.0.0", 3000, ["durable.example.com"])
    assert status(hosts, "GET", host="10.1.2.3:3000") == 200
    assert status(hosts, "GET", host="[fd00::1]:3000") == 200
    assert status(hosts, "GET", host="durable.example.com") == 200
    assert status(hosts, "GET", host="durable.example.com:8443") == 200  # no port: any
    assert status(hosts, "GET", host="rebound.example:3000") == 400
    pinned = AllowedHosts.for_bind("0.0.0.0", 3000, ["proxy.example:443"])
    assert status(pinned, "GET", host="proxy.example:443") == 200
    assert status(pinned, "GET", host="proxy.example:80") == 400
    with pytest.raises(HostSyntaxError, match="--allowed-host 'http://x'"):
        AllowedHosts.for_bind("127.0.0.1", 3000, ["http://x"])


def test_writes_need_json_and_their_own_origin() -> None:
    hosts = AllowedHosts.for_bind("127.0.0.1", 3000)
    host = "127.0.0.1:3000"
    json_body = {"host": host, "content_type": "application/json", "content_length": "2"}
    assert status(hosts, "POST", **json_body) == 200
    assert status(hosts, "POST", **json_body, origin="http://127.0.0.1:3000") == 200
    # The scheme is not compared (a TLS-terminating proxy): only this server has this port.
    assert status(hosts, "POST", **json_body, origin="https://127.0.0.1:3000") == 200
    for origin in (
        "http://127.0.0.1:3001",
        "http://localhost:3000",  # another origin, although the same server
        "null",
        "http://evil.example",
        "garbage",
    ):
        assert status(hosts, "POST", **json_body, origin=origin) == 403, origin
    for kind in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", ""):
        assert status(hosts, "POST", host=host, content_type=kind) == 415, kind
        assert status(hosts, "DELETE", host=host, content_type=kind, content_length="3") == 415
    assert status(hosts, "PUT", host=host, content_type="Application/JSON; charset=utf-8") == 200
    # A body needs the type; a request with neither carries nothing to misread.
    assert status(hosts, "POST", host=host, content_length="5") == 415
    assert status(hosts, "POST", host=host, transfer_encoding="chunked") == 415
    assert status(hosts, "POST", host=host) == 200
    assert status(hosts, "POST", host=host, content_length="0") == 200
    # Reads: Host only.
    assert status(hosts, "GET", host=host, origin="http://evil.example") == 200


def test_a_proxy_s_public_origin_is_accepted_when_the_operator_names_it() -> None:
    hosts = AllowedHosts.for_bind("127.0.0.1", 3000, ["durable.example.com"])
    behind = {"content_type": "application/json", "origin": "https://durable.example.com"}
    # A proxy that passes the Host through, and one that rewrites it to the upstream address.
    assert status(hosts, "POST", host="durable.example.com", **behind) == 200
    assert status(hosts, "POST", host="127.0.0.1:3000", **behind) == 200
    other = {**behind, "origin": "https://evil.example.com"}
    assert status(hosts, "POST", host="durable.example.com", **other) == 403


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_json_depth_is_the_nesting_whatever_the_strings_hold(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert json_depth(text.encode()) == depth_of(value)


def test_json_depth_of_a_huge_flat_body_is_quick_and_right() -> None:
    assert json_depth(b"[" + b"1," * 400_000 + b"1]") == 1
    assert json_depth(b'"' + b"[" * 1_000_000 + b'"') == 0
    assert json_depth(b"[" * 5000) == 5000


def test_serve_refuses_a_malformed_allowed_host(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "durable", "serve", "--port", "0"]
    command += ["--db", f"sqlite:///{tmp_path / 'r.db'}", "--allowed-host", "https://x/"]
    refused = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=server_env(tmp_path)
    )
    assert refused.returncode == 2, refused.stderr
    assert "--allowed-host 'https://x/' is not a host name" in refused.stderr
