"""A notification in flight when the worker is SIGKILLed is delivered after a restart: the
run's end waits for its deliveries, and the log says which are still owed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from durable import events
from durable._events import decode_record
from storage import EventRecord, open_store

CHILD = """
import asyncio, sys
from sdk import App

async def main(db: str, flow: str) -> None:
    app = App(f"sqlite:///{db}", lease_ttl=1.0, poll_interval=0.2)
    async with app:
        name = app.register_dag(flow)
        result = await app.run_dag(name, None, run_id="notify-run", timeout=120)
        print(result.status, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


class Hook:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.release = threading.Event()  # until set, requests hang (a slow receiver)
        self.url = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.bodies.append(body)
            state.release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        yield state
        state.release.set()
        httpd.shutdown()
        thread.join()


async def _events(db: Path) -> list[EventRecord]:
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        return await store.read_events("notify-run")
    finally:
        await store.close()


def _child(tmp_path: Path, flow: Path) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "runs.db"), str(flow)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_delivery_cut_by_sigkill_is_sent_after_restart(tmp_path: Path, hook: Hook) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""
            name: notified
            tasks:
              work: {{script: "echo done"}}
            notifications:
              on_success:
                - type: webhook
                  url: {hook.url}
            """
        )
    )
    first = _child(tmp_path, flow)
    deadline = time.monotonic() + 60
    while not hook.bodies:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the notification was never sent"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    hook.release.set()

    second = _child(tmp_path, flow)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.strip() == "succeeded"
    # Sent once by the killed worker (never answered) and once after the restart.
    assert len(hook.bodies) == 2
    sent = [msgspec.json.decode(b) for b in hook.bodies]
    assert sent[0] == sent[1]  # the payload comes from the log: the same both times
    assert sent[1]["event"] == "run.succeeded" and sent[1]["run_id"] == "notify-run"

    records = asyncio.run(_events(tmp_path / "runs.db"))
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    logged = [decode_record(r).event for r in records]
    names = {e.pos: e.name for e in logged if isinstance(e, events.StepStarted)}
    done = [names[e.pos] for e in logged if isinstance(e, events.StepCompleted)]
    assert sorted(done) == ["@notify.on_success[0]", "work"]  # each recorded exactly once
    assert isinstance(logged[-1], events.RunCompleted)
