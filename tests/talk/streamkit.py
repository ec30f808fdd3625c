"""Helpers of the stream tests that run real processes: `durable serve` and `durable worker`
subprocesses on examples/stream_tokens.py, and an SSE reader that reconnects with
Last-Event-ID."""

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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import ModuleType

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "stream_tokens.py"
APP = "examples.stream_tokens:app"
RECONNECT_AFTER = 5  # a Reader drops its connection once after this many values


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stream_tokens_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env(extra_path: str = "", resume: bool = True) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    paths = [extra_path, str(ROOT), environ.get("PYTHONPATH")]
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    environ["STREAM_TOKENS_DELAY"] = "0.03"  # slow enough for the kill to land mid-reply
    environ["STREAM_TOKENS_RESUME"] = "1" if resume else "0"
    return environ


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(
    args: list[str], log: Path, extra_path: str = "", *, resume: bool = True
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "durable", *args],
            cwd=ROOT,
            env=env(extra_path, resume),
            stdout=sink,
            stderr=sink,
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


def worker(
    url: str, log: Path, *, resume: bool = True
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A `durable worker` of the example; resume=False: its generate step writes every token
    again on a retry (exactly once by the store's dedupe, not by stream_resume)."""
    args = ["worker", APP, "--db", url, "--lease-ttl", "1", "--poll-interval", "0.1"]
    return process(args, log, resume=resume)


class Reader(threading.Thread):
    """Follows the stream over SSE, reconnecting with Last-Event-ID after any drop."""

    def __init__(self, base: str, path: str, *, drop: bool = True) -> None:
        super().__init__(daemon=True)
        self.base, self.path = base, path
        self.drop = drop
        self.stop = threading.Event()  # set: give up reconnecting
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
        dropped = not self.drop
        while self.end is None and not self.stop.is_set():
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


@contextmanager
def serving(
    url: str, workdir: Path, *args: str, extra_path: str = ""
) -> Iterator[tuple[str, httpx.Client, subprocess.Popen[bytes]]]:
    """A `durable serve` process on `url`; yields its base URL, a client and the process, once
    it answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = workdir / "serve.log"
    command = ["serve", "--db", url, "--port", str(port), *args]
    with process(command, log, extra_path) as server, httpx.Client(base_url=base) as api:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if api.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "durable serve did not start"
            time.sleep(0.1)
        yield base, api, server
