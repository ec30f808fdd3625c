"""Real loopback servers for tests (a pytest plugin, `-p loopback` in pyproject): an HTTP
server that records requests and answers per path, a local SMTP server, a refusing port."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Seen:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lowercased
    body: bytes


@dataclass
class Hold:
    """A request held open: recorded, then not answered until `release()` (or `limit` s)."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    limit: float = 60.0

    def wait(self, timeout: float) -> bool:
        """Whether the request came in within `timeout` seconds."""
        return self.arrived.wait(timeout)

    def release(self) -> None:
        self.released.set()


@dataclass
class Web:
    """Records every request (before answering it) and answers from `replies` by path."""

    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    replies: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    # Answers used once each, before `replies`: e.g. a 500 then the normal reply (retries).
    once: dict[str, list[tuple[int, str, bytes]]] = field(default_factory=dict)
    status: int = 200  # the default reply, for paths without one of their own
    answer: bytes = b'{"ok": true}'
    # Computed answers: a function of the request, whose value is sent as JSON with a 200.
    computed: dict[str, Callable[[Seen], Any]] = field(default_factory=dict)
    # Requests to hold open, each used once, in order: see hold().
    holds: list[tuple[str, Hold]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reply(self, path: str, status: int, content_type: str, body: bytes) -> None:
        self.replies[path] = (status, content_type, body)

    def compute(self, path: str, fn: Callable[[Seen], Any]) -> None:
        self.computed[path] = fn

    def seen(self, path: str) -> list[Seen]:
        """The requests received on `path` (any query string), in order."""
        return [s for s in self.requests if urlsplit(s.path).path == path]

    def fail_first(self, path: str, times: int, status: int = 500) -> None:
        self.once.setdefault(path, []).extend([(status, "text/plain", b"try again")] * times)

    def hold(self, path: str) -> Hold:
        """Hold the next request on `path` open (after recording it) until released: a
        client can be killed while its request is in flight."""
        held = Hold()
        self.holds.append((path, held))
        return held

    def take_hold(self, path: str) -> Hold | None:
        with self._lock:  # two requests at once must not both take the same hold
            for where, held in self.holds:
                if where == path and not held.arrived.is_set():
                    held.arrived.set()
                    return held
        return None

    @property
    def bodies(self) -> list[tuple[str, bytes]]:
        return [(seen.path, seen.body) for seen in self.requests]

    def posted(self, path: str) -> list[Any]:
        """The JSON bodies received on `path`, in order."""
        return [json.loads(s.body) for s in self.requests if urlsplit(s.path).path == path]

    @property
    def last(self) -> Seen:
        assert len(self.requests) == 1, self.requests
        return self.requests[0]


def _handler(web: Web) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            web.requests.append(Seen(self.command, self.path, headers, body))
            path = urlsplit(self.path).path
            held = web.take_hold(path)
            if held is not None:
                held.released.wait(held.limit)
                # The client may be gone (killed): that was the point of holding it.
                with contextlib.suppress(ConnectionError):
                    self._answer(path)
                return
            self._answer(path)

        def _answer(self, path: str) -> None:
            queued = web.once.get(path)
            if queued:
                status, kind, payload = queued.pop(0)
            elif path in web.computed:
                status, kind = 200, "application/json"
                payload = json.dumps(web.computed[path](web.requests[-1])).encode()
            else:
                default = (web.status, "application/json", web.answer)
                status, kind, payload = web.replies.get(path, default)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Reply", "yes")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output clean

    return Handler


@contextmanager
def serving(recorder: Web, sock: socket.socket | None = None) -> Iterator[Web]:
    """Serve `recorder` on a fresh loopback port, or on `sock`: a socket bound but not yet
    listening (connections to it are refused until now), e.g. a receiver that comes up late.
    `sock` then belongs to the server, which closes it."""
    if sock is None:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    else:
        httpd = ThreadingHTTPServer(sock.getsockname(), _handler(recorder), False)
        httpd.socket.close()
        httpd.socket = sock
        httpd.server_activate()
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    # A short poll interval only makes shutdown() quick; it synchronises nothing.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        for _, held in recorder.holds:
            held.release()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def web() -> Iterator[Web]:
    with serving(Web()) as recorder:
        yield recorder


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@dataclass
class Inbox:
    """An aiosmtpd handler: keeps every accepted message and every login."""

    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    port: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=True)

    def message(self) -> tuple[email.message.EmailMessage, str]:
        """The one message received, and its text body."""
        assert len(self.envelopes) == 1, self.envelopes
        raw = self.envelopes[0].content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        # The SMTP wire form keeps CRLF line ends.
        return parsed, str(parsed.get_content()).replace("\r\n", "\n")


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    # aiosmtpd's SMTP protocol served by this test's own loop, on a port the kernel picks
    # (Controller needs a fixed port); deliver() runs smtplib in a thread, so the loop is
    # free to answer it.
    box = Inbox()
    protocol = partial(
        SMTP, box, hostname="localhost", authenticator=box.authenticate, auth_require_tls=False
    )
    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    yield box
    server.close()
    await server.wait_closed()
