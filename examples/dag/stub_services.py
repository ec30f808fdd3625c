"""A loopback HTTP server standing in for the outside services the seed examples call.

The examples name services such as `http://validation-service/validate`, a Slack webhook or
the PagerDuty Events API. They take the base URL from the run input (`{{ input.services }}`)
or the environment (`{{ env.SLACK_WEBHOOK }}`), so pointing them at this server runs them
without the network: `run_example.py --stub`, and tests/test_dag_examples.py.

Every request is recorded (method, path, JSON body) before it is answered. Answers come from
`replies` by path (canned data for the paths the examples read, `{"ok": true}` otherwise); a
path can be made to fail, always or for its first N requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# What the examples read: 003's ETL source system and 002's ETL API.
SOURCE_DATA: dict[str, Any] = {
    "users": [
        {"id": 1, "name": "Ada", "email": "ada@example.com"},
        {"id": 2, "name": "Grace", "email": "grace@example.com"},
        {"id": 3, "name": "Linus", "email": "linus@example.com"},
    ],
    "orders": [
        {"id": 101, "userId": 1, "status": "active", "total": 25.0},
        {"id": 102, "userId": 2, "status": "cancelled", "total": 40.0},
        {"id": 103, "userId": 3, "status": "active", "total": 12.5},
    ],
}
API_RECORDS: list[dict[str, Any]] = [
    {"id": "a1", "amount": 10},
    {"id": "a2", "amount": 32},
    {"id": "a3", "amount": 8},
]
DEFAULT_REPLIES: dict[str, tuple[int, Any]] = {
    "/source-system/data": (200, SOURCE_DATA),
    "/v1/records": (200, API_RECORDS),
    "/validation-service/validate": (200, {"valid": True}),
    "/validation/validate": (200, {"valid": True}),
    "/payment-service/charge": (200, {"charged": True, "transactionId": "txn-0001"}),
    "/payment/charge": (200, {"charged": True, "transactionId": "txn-0001"}),
    "/inventory/check": (200, {"available": True}),
    "/shipping/ship": (200, {"trackingNumber": "TRACK-42"}),
    "/pagerduty/v2/enqueue": (202, {"status": "success", "message": "Event processed"}),
}


@dataclass
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lowercased
    body: Any  # decoded JSON, else the text (None when empty)


@dataclass
class StubServices:
    """`with StubServices() as stub:` serves on 127.0.0.1 at `stub.url` until the block ends."""

    replies: dict[str, tuple[int, Any]] = field(default_factory=lambda: dict(DEFAULT_REPLIES))
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    port: int = 0  # 0: any free port
    _failures: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def reply(self, path: str, status: int, body: Any) -> None:
        self.replies[path] = (status, body)

    def fail(self, path: str, status: int = 503, times: int | None = None) -> None:
        """Answer `status` to requests for `path`: all of them, or only the first `times`."""
        self._failures[path] = (status, times)

    def to(self, path: str) -> list[Request]:
        """The requests received for `path` (without query), in arrival order."""
        return [r for r in self.requests if urlsplit(r.path).path == path]

    @property
    def paths(self) -> list[str]:
        return [urlsplit(r.path).path for r in self.requests]

    def _answer(self, path: str) -> tuple[int, Any]:
        with self._lock:
            failing = self._failures.get(path)
            if failing is not None:
                status, times = failing
                if times is None:
                    return status, {"error": "simulated outage"}
                if times > 0:
                    self._failures[path] = (status, times - 1)
                    return status, {"error": "simulated outage"}
            return self.replies.get(path, (200, {"ok": True}))

    def __enter__(self) -> StubServices:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                text = raw.decode("utf-8", "replace")
                try:
                    body: Any = json.loads(text) if text else None
                except ValueError:
                    body = text
                headers = {k.lower(): v for k, v in self.headers.items()}
                stub.requests.append(Request(self.command, self.path, headers, body))
                status, answer = stub._answer(urlsplit(self.path).path)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the example's output readable

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # A short poll interval only makes shutdown() quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()


def main() -> None:
    """`python examples/dag/stub_services.py --port 8765`: serve until stopped (the README's
    DAG commands point the examples at it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.ExitStack() as stack:
        try:
            stub = stack.enter_context(StubServices(port=args.port))
        except OSError as exc:
            raise SystemExit(
                f"error: cannot serve on 127.0.0.1:{args.port}: {exc.strerror}"
            ) from None
        print(f"stub services on {stub.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()


if __name__ == "__main__":
    main()
