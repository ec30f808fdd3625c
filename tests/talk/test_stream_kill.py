"""The kill test of streams: a `durable worker` process runs examples/stream_tokens.py's
workflow, a reader follows the token stream over HTTP (a `durable serve` process, Server-Sent
Events, reconnecting with Last-Event-ID, once on purpose mid-stream), the test SIGKILLs the
worker after some tokens and starts another. The reader sees every token exactly once, in
order, then the end. On SQLite and on PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "stream_tokens.py"
APP = "examples.stream_tokens:app"
PROMPT = "why do streams survive a crash?"
KILL_AFTER = 12  # tokens stored before the SIGKILL
RECONNECT_AFTER = 5  # the reader drops its connection once after this many tokens


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stream_tokens_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    environ["STREAM_TOKENS_DELAY"] = "0.03"  # slow enough for the kill to land mid-reply
    return environ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", *args], cwd=ROOT, env=env(), stdout=sink, stderr=sink
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def worker(url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    args = ["worker", APP, "--db", url, "--lease-ttl", "1", "--poll-interval", "0.1"]
    return process(args, log)


class Reader(threading.Thread):
    """Follows the stream over SSE, reconnecting with Last-Event-ID after any drop."""

    def __init__(self, base: str, path: str) -> None:
        super().__init__(daemon=True)
        self.base, self.path = base, path
        self.values: list[tuple[int, object]] = []
        self.end: object = None
        self.connections = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._follow(time.monotonic() + 90)
        except BaseException as exc:  # reported by the test
            self.failure = exc

    def _follow(self, deadline: float) -> None:
        dropped = False
        while self.end is None:
            assert time.monotonic() < deadline, f"no end after {self.values}"
            headers = {"Accept": "text/event-stream"}
            if self.values:
                headers["Last-Event-ID"] = str(self.values[-1][0])
            try:
                with (
                    httpx.Client(base_url=self.base, timeout=30) as client,
                    client.stream("GET", self.path, headers=headers) as response,
                ):
                    assert response.status_code == 200, response.read()
                    self.connections += 1
                    event: dict[str, str] = {}
                    for line in response.iter_lines():
                        if line:
                            name, _, value = line.partition(":")
                            event[name] = value.strip()
                            continue
                        if event.get("event") == "value":
                            self.values.append((int(event["id"]), json.loads(event["data"])))
                        elif event.get("event") == "end":
                            self.end = json.loads(event["data"])
                            return
                        event = {}
                        if len(self.values) >= RECONNECT_AFTER and not dropped:
                            dropped = True
                            break  # a disconnect mid-stream: resume with Last-Event-ID
            except httpx.TransportError:
                time.sleep(0.1)


def stored(api: httpx.Client, run_id: str) -> int:
    streams = api.get(f"/executions/{run_id}/streams")
    if streams.status_code != 200:
        return 0
    counts = {s["key"]: s["count"] for s in streams.json()["streams"]}
    return int(counts.get("tokens", 0))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        fresh: str = request.getfixturevalue("pg_fresh_url")
        return fresh
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_a_killed_worker_loses_and_repeats_no_token(url: str, tmp_path: Path) -> None:
    tokens = example().tokens_for(PROMPT)
    assert len(tokens) > KILL_AFTER + 10
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = ["serve", "--db", url, "--port", str(port), "--app", APP, "--no-worker"]
    with process(serve, tmp_path / "serve.log") as server, httpx.Client(base_url=base) as api:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if api.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "durable serve did not start"
            time.sleep(0.1)
        body = {"workflowId": "answer", "context": PROMPT, "executionId": "k1"}
        started = api.post("/executions/start", json=body)
        assert started.status_code in (200, 201), started.text
        reader = Reader(base, "/executions/k1/streams/tokens")
        reader.start()
        with worker(url, tmp_path / "worker1.log") as first:
            deadline = time.monotonic() + 60
            while (count := stored(api, "k1")) < KILL_AFTER:
                assert first.poll() is None, (tmp_path / "worker1.log").read_text()
                assert time.monotonic() < deadline, f"only {count} tokens stored"
                time.sleep(0.01)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        at_kill = stored(api, "k1")
        assert at_kill < len(tokens), "the kill came too late: the reply was complete"
        with worker(url, tmp_path / "worker2.log"):
            reader.join(timeout=90)
            assert not reader.is_alive(), f"the reader never ended: {reader.values}"
            assert reader.failure is None, reader.failure
            run = api.get("/executions/k1").json()
            deadline = time.monotonic() + 30
            while run["status"] != "succeeded":
                assert time.monotonic() < deadline, run
                time.sleep(0.1)
                run = api.get("/executions/k1").json()
        events = api.get("/executions/k1/events").json()["events"]
    # Every token once, in order, at offsets 1..n; then the end (the step closed the stream).
    assert [v for _, v in reader.values] == tokens
    assert [i for i, _ in reader.values] == list(range(1, len(tokens) + 1))
    assert reader.end == {"reason": "closed"}
    assert reader.connections >= 2  # the drop on purpose at least
    # The generation really ran twice: the killed attempt and the one that finished.
    started = [e for e in events if e["type"] == "StepStarted"]
    assert [e["fields"].get("name") for e in started].count("generate") == 2, started
