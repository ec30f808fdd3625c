"""Running the API under uvicorn until SIGTERM or Ctrl-C, and stopping at once when told.

uvicorn stops gracefully: it waits for every open response to finish. An event stream of a
run that waits for a signal finishes when the run does, maybe never, so on the first SIGTERM
or SIGINT the open streams are ended (the dashboard and `after=` let clients resume where
they were), and whatever else still runs after GRACE seconds is cancelled. A stop asked for
by a signal is a clean exit (status 0), not death by that signal.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import uvicorn
from litestar import Litestar

from ._app import end_streams

GRACE = 5  # seconds for requests other than event streams to finish once stopping
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Litestar) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        end_streams(self.app)
        super().handle_exit(sig, frame)


def run(app: Litestar, host: str, port: int, log_level: str) -> None:
    """Serve `app` on host:port until a signal stops it; returns normally then."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACE,
    )
    server = _Server(config, app)

    # Before uvicorn has its handlers in place, a signal stops the server as soon as it can;
    # once stopped, uvicorn puts these back and re-raises the signal: nothing left to do.
    previous: dict[int, Any] = {sig: signal.signal(sig, server.handle_exit) for sig in _SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
