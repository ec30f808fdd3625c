"""`durable serve` as a real subprocess on a free loopback port, for the API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def serve_command(db: str, port: int, args: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "durable",
        "serve",
        "--db",
        db,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]


def server_env(workdir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(workdir), str(REPO), str(REPO / "tests"), *filter(None, [environ.get("PYTHONPATH")])]
    )
    environ.update(env or {})
    return environ


@contextmanager
def serve(
    workdir: Path,
    *args: str,
    db: str | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "server",
    timeout: float = 30.0,
) -> Iterator[Served]:
    """Start `durable serve` (SQLite in `workdir` unless `db`), yield once /health answers,
    stop it with SIGTERM (SIGKILL after 10 s) afterwards."""
    port = free_port()
    log = workdir / f"{name}.log"
    command = serve_command(db or f"sqlite:///{workdir / 'runs.db'}", port, args)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=workdir, env=server_env(workdir, env), stdout=sink, stderr=sink
        )
    served = Served(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"durable serve exited {process.returncode}:\n{served.output()}")
            try:
                if httpx.get(f"{served.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"durable serve did not answer in {timeout} s:\n{served.output()}")
            time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_status(client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 30) -> dict:  # type: ignore[type-arg]
    """Poll GET /executions/{id} until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout
    body: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        response = client.get(f"/executions/{run_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {body.get('status')} after {timeout} s: {body}")
