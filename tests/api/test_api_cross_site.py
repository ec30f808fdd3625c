"""`durable serve` without a token is not a remote shell for the web pages a local browser
opens: a hostile page on another origin (a second loopback server, another port), in a real
headless Chromium, sends "simple" cross-site requests (no preflight: a `no-cors` fetch with a
text/plain body, and a text/plain form) that register a definition with a `script:` step and
start it. None may register, start or run anything. And a DNS-rebinding request (a name the
attacker controls, resolving to 127.0.0.1, in `Host`) is refused, for reads too."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import chromium_path
from cirules import in_ci
from loopback import Web
from serving import serve

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)


def script_definition(workflow: str, marker: Path) -> dict[str, object]:
    return {
        "id": workflow,
        "steps": [
            {"id": "hello", "action": "transform", "params": {"code": "return 1"}},
            {"id": "pwn", "script": f"touch {marker}", "dependencies": ["hello"]},
        ],
    }


def text_plain_form(form_id: str, action: str, target: str, body: dict[str, object]) -> str:
    """A form whose text/plain encoding (`name=value`) is the JSON `body`: the name holds the
    JSON up to an extra string field's opening quote, the value closes it ("=" becomes that
    field's text): the classic way to send JSON cross-site from a form."""
    text = json.dumps(body)
    assert text.endswith("}")
    name = text[:-1] + ', "description": "'
    return (
        f"<form id='{form_id}' method='post' enctype='text/plain' action='{action}' "
        f"target='{target}'><input type='hidden' name='{name}' value='\"}}'></form>"
    )


def hostile_page(server: str, tmp: Path) -> bytes:
    fetched = script_definition("pwn-fetch", tmp / "marker-fetch")
    formed = script_definition("pwn-form", tmp / "marker-form")
    start_fetched = {"workflowId": "pwn-fetch", "executionId": "pwn-fetch-1"}
    start_formed = {"workflowId": "pwn-form", "executionId": "pwn-form-1", "context": ""}
    forms = text_plain_form("register", f"{server}/workflows", "f1", formed)
    # The start form's extra field must be one StartRequest knows: "context" (any value).
    start_text = json.dumps(start_formed)
    start_name = start_text[: start_text.rindex('""')] + '"'
    forms += (
        f"<form id='start' method='post' enctype='text/plain' action='{server}/executions/start'"
        f" target='f2'><input type='hidden' name='{start_name}' value='\"}}'></form>"
    )
    script = f"""
      const server = {json.dumps(server)};
      const simple = (path, body) => fetch(server + path, {{
        method: "POST", mode: "no-cors", body: JSON.stringify(body),
        headers: {{"Content-Type": "text/plain"}},
      }});
      function submitInto(formId, frame) {{
        return new Promise((resolve) => {{
          document.querySelector(`iframe[name=${{frame}}]`)
            .addEventListener("load", () => resolve(), {{once: true}});
          document.getElementById(formId).submit();
        }});
      }}
      window.attack = async () => {{
        await simple("/workflows", {json.dumps(fetched)});
        await simple("/executions/start", {json.dumps(start_fetched)});
        await submitInto("register", "f1");
        await submitInto("start", "f2");
        return "done";
      }};
    """
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cute cats</title></head>"
        f"<body><iframe name='f1'></iframe><iframe name='f2'></iframe>{forms}"
        f"<script>{script}</script></body></html>"
    )
    return page.encode()


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def assert_nothing_happened(api: httpx.Client, tmp: Path) -> None:
    workflows = [w["id"] for w in api.get("/workflows").json()["workflows"]]
    assert not [w for w in workflows if w.startswith("pwn")], workflows
    assert api.get("/executions").json()["executions"] == []
    time.sleep(1.0)  # had a run been started, its worker would have run the script by now
    assert not list(tmp.glob("marker-*"))


def test_a_page_on_another_origin_cannot_register_start_or_run_code(
    tmp_path: Path, web: Web, browser: Browser
) -> None:
    with serve(tmp_path) as server, server.client() as api:
        web.reply("/cats", 200, "text/html; charset=utf-8", hostile_page(server.url, tmp_path))
        page = browser.new_page()
        page.goto(f"{web.url}/cats")
        assert page.evaluate("window.attack()") == "done"
        # The forms' answers are in the frames: the server refused them, saying why.
        for name in ("f1", "f2"):
            frame = page.frame(name=name)
            assert frame is not None
            answer = frame.inner_text("body")
            assert "cross-origin request refused" in answer, answer
        assert_nothing_happened(api, tmp_path)


def test_a_page_on_a_rebound_name_can_neither_read_nor_write(tmp_path: Path) -> None:
    """DNS rebinding in a real browser: the attacker's page comes from evil.example:PORT,
    then the name resolves to 127.0.0.1, so the page's requests to its own origin reach the
    server, same-origin as far as the browser knows: Origin and Content-Type rules cannot tell
    them apart, only Host can."""
    with serve(tmp_path) as server, server.client() as api:
        port = server.url.rsplit(":", 1)[1]
        origin = f"http://evil.example:{port}"
        definition = json.dumps(script_definition("pwn-rebound", tmp_path / "marker-rebound"))
        start = json.dumps({"workflowId": "pwn-rebound", "executionId": "pwn-rebound-1"})
        script = f"""async () => {{
            const json = {{"Content-Type": "application/json"}};
            const read = await fetch("/executions");
            const wrote = await fetch("/workflows", {{method: "POST", headers: json,
                                                       body: {json.dumps(definition)}}});
            const started = await fetch("/executions/start", {{method: "POST", headers: json,
                                                               body: {json.dumps(start)}}});
            return [read.status, wrote.status, started.status, await read.text()];
        }}"""
        args = [
            "--host-resolver-rules=MAP evil.example 127.0.0.1",
            # Chromium's own (newer) guard against public pages reaching loopback would stop
            # this page before the server sees anything: off, to test the server's guard, as
            # other browsers and older Chromiums are.
            "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,"
            "PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults",
        ]
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=chromium_path(), headless=True, args=args
            )
            try:
                page = launched.new_page()
                # The first answer comes from the attacker's server, before the name rebinds.
                page.route(
                    f"{origin}/cats",
                    lambda route: route.fulfill(
                        status=200, content_type="text/html", body="<!doctype html><p>cats"
                    ),
                )
                page.goto(f"{origin}/cats")
                read, wrote, started, text = page.evaluate(script)
            finally:
                launched.close()
        assert (read, wrote, started) == (400, 400, 400), text
        assert "evil.example" in json.loads(text)["error"]
        assert_nothing_happened(api, tmp_path)


def test_a_rebound_host_name_is_refused(tmp_path: Path) -> None:
    with serve(tmp_path) as server, server.client() as api:
        port = server.url.rsplit(":", 1)[1]
        evil = {"Host": f"evil.example:{port}"}
        read = api.get("/executions", headers=evil)
        assert read.status_code == 400, read.text
        error = read.json()["error"]
        assert "evil.example" in error and "--allowed-host" in error
        definition = script_definition("pwn-rebind", tmp_path / "marker-rebind")
        write = api.post("/workflows", json=definition, headers=evil)
        assert write.status_code == 400, write.text
        assert api.get("/", headers=evil).status_code == 400  # the dashboard too
        assert api.get("/static/app.js", headers=evil).status_code == 400
        # The addresses it serves are fine: the bind address and the loopback names.
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert api.get("/executions", headers={"Host": host}).status_code == 200, host
        assert_nothing_happened(api, tmp_path)


def test_an_operator_allows_a_proxy_s_host_name(tmp_path: Path) -> None:
    with (
        serve(tmp_path, "--allowed-host", "durable.example.com") as server,
        server.client() as api,
    ):
        proxied = {"Host": "durable.example.com", "Origin": "https://durable.example.com"}
        assert api.get("/executions", headers=proxied).status_code == 200
        body = {"id": "via-proxy", "steps": [{"id": "a"}]}
        assert api.post("/workflows", json=body, headers=proxied).status_code == 201
        assert api.get("/executions", headers={"Host": "other.example.com"}).status_code == 400


def test_state_changing_requests_need_json_and_no_foreign_origin(tmp_path: Path) -> None:
    definition = {"id": "plain", "steps": [{"id": "a"}]}
    text = json.dumps(definition).encode()
    with serve(tmp_path) as server, server.client() as api:
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            refused = api.post("/workflows", content=text, headers={"Content-Type": kind})
            assert refused.status_code == 415, refused.text
            error = refused.json()["error"]
            assert "Content-Type: application/json" in error and kind in error, error
        missing = api.post("/workflows", content=text)  # no Content-Type at all
        assert missing.status_code == 415, missing.text
        empty_plain = api.post("/executions/x/cancel", headers={"Content-Type": "text/plain"})
        assert empty_plain.status_code == 415, empty_plain.text
        # Neither a body nor a type: nothing to misread (a browser would send an Origin).
        assert api.post("/executions/x/cancel").status_code == 404
        start = {"workflowId": "plain"}
        plain = api.post(
            "/executions/start",
            content=json.dumps(start).encode(),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert plain.status_code == 415, plain.text
        assert api.get("/workflows").json()["workflows"] == []

        for origin in ("http://evil.example", "null", server.url.replace("127.0.0.1", "lh")):
            foreign = api.post("/workflows", json=definition, headers={"Origin": origin})
            assert foreign.status_code == 403, (origin, foreign.text)
            assert "cross-origin" in foreign.json()["error"], foreign.text
        other_port = server.url.rsplit(":", 1)[0] + ":1"
        assert (
            api.post("/workflows", json=definition, headers={"Origin": other_port}).status_code
            == 403
        )
        assert api.get("/workflows").json()["workflows"] == []

        # The dashboard's own requests (same origin) and clients that send no Origin work.
        same = api.post("/workflows", json=definition, headers={"Origin": server.url})
        assert same.status_code == 201, same.text
        json_charset = {"Content-Type": "application/json; charset=utf-8"}
        started = api.post("/executions/start", content=json.dumps(start), headers=json_charset)
        assert started.status_code == 201, started.text
        # Reads need neither: a browser may read what it is shown (CORS keeps it from others).
        assert api.get("/workflows", headers={"Origin": "http://evil.example"}).status_code == 200
