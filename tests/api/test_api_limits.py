"""Bad input never costs a 500, and an open event stream never keeps `durable serve` from
stopping: JSON nested deeper than the server accepts gets a 400 on every endpoint that takes
a body, and SIGTERM ends open Server-Sent Events streams and the server at once (exit 0)."""

from __future__ import annotations

import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import httpx
from serving import serve, wait_status

from durable.api import MAX_JSON_DEPTH

APP = textwrap.dedent(
    """
    from sdk import App, Context

    app = App("sqlite:///unused.db")

    @app.workflow(name="approval")
    async def approval(ctx: Context, request: dict) -> dict:
        return {"decision": await ctx.wait_for_signal("decide")}
    """
)


def nested(depth: int, leaf: str = "1") -> str:
    """`depth` levels of alternating arrays and objects around `leaf`."""
    text = leaf
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k":{text}}}'
    return text


def test_deeply_nested_json_gets_a_400_on_every_endpoint_with_a_body(tmp_path: Path) -> None:
    (tmp_path / "approvals.py").write_text(APP)
    with serve(tmp_path, "--app", "approvals:app") as server, server.client() as api:
        start = {"workflowId": "approval", "executionId": "r-1", "context": {}}
        assert api.post("/executions/start", json=start).status_code == 201
        too_deep = MAX_JSON_DEPTH + 1
        bodies = {
            "/workflows": [
                nested(1000),
                "[" * 1000 + "]" * 1000,
                '{"id":"w","steps":[{"id":"a","params":' + nested(too_deep) + "}]}",
            ],
            "/executions/start": [
                nested(1000),
                '{"workflowId":"approval","context":' + nested(too_deep) + "}",
            ],
            "/executions/r-1/cancel": [nested(1000), '{"reason":' + nested(too_deep) + "}"],
            "/executions/r-1/signals/decide": [nested(1000), nested(too_deep)],
        }
        json_type = {"Content-Type": "application/json"}
        for path, texts in bodies.items():
            for text in texts:
                answer = api.post(path, content=text.encode(), headers=json_type)
                assert answer.status_code == 400, (path, text[:40], answer.text)
                error = answer.json()["error"]
                assert f"nested more than {MAX_JSON_DEPTH} levels" in error, error
        # Strings may hold any number of brackets, and the limit itself is fine.
        fine = {"workflowId": "approval", "executionId": "r-2", "context": {"s": "[{" * 5000}}
        assert api.post("/executions/start", json=fine).status_code == 201
        deep_ok = '{"workflowId":"approval","executionId":"r-3","context":'
        deep_ok += nested(MAX_JSON_DEPTH - 1) + "}"
        accepted = api.post("/executions/start", content=deep_ok.encode(), headers=json_type)
        assert accepted.status_code == 201, accepted.text
        assert wait_status(api, "r-1", {"running", "pending"})


def test_sigterm_ends_open_event_streams_and_the_server_at_once(tmp_path: Path) -> None:
    (tmp_path / "approvals.py").write_text(APP)
    with serve(tmp_path, "--app", "approvals:app") as server, server.client() as api:
        start = {"workflowId": "approval", "executionId": "a-1", "context": {}}
        assert api.post("/executions/start", json=start).status_code == 201
        wait_status(api, "a-1", {"running"})
        seen: list[str] = []
        first = threading.Event()
        ended = threading.Event()

        def listen() -> None:
            headers = {"Accept": "text/event-stream"}
            try:
                with (
                    httpx.Client(base_url=server.url, timeout=60) as client,
                    client.stream("GET", "/executions/a-1/events", headers=headers) as stream,
                ):
                    for line in stream.iter_lines():
                        if line.startswith("event:"):
                            seen.append(line)
                            first.set()
            except httpx.HTTPError:
                pass  # the server closing the connection is fine: ending is what counts
            ended.set()

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert first.wait(30), "the stream sent nothing"
        time.sleep(0.3)  # the stream is now waiting for the run's next event
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - sent
        assert code == 0, (code, server.output())
        assert took < 2.0, f"durable serve took {took:.1f} s to stop with a stream open"
        assert ended.wait(5), "the client's stream did not end"
        assert seen[0] == "event: RunStarted"
