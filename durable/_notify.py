"""Wake-ups for watchers and waiters: an append that became durable wakes whoever follows that
run in this process. Other processes' changes arrive through the store when it announces them
(PostgreSQL's changes channel: the engine calls notify() for each announced run id), else they
are seen by the waiters' polls (SQLite).

A waiter subscribes, then awaits ready() (which starts the store's listening the first time;
a no-op without one), then reads, then waits on its event or its poll backoff, whichever
comes first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("durable")


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listen: Callable[[], Awaitable[object]] | None = None
        self._listening: asyncio.Future[object] | None = None

    def listen_with(self, listen: Callable[[], Awaitable[object]] | None) -> None:
        """Start the store's announcements through `listen` at the first subscription (a
        process that never waits never listens)."""
        self._listen = listen
        self._listening = None

    def notify(self, run_id: str) -> None:
        waiters = self._waiters.get(run_id)
        if waiters:
            for event in waiters:
                event.set()

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set on every durable append to the run. Subscribe *before* reading, so no
        append between the read and the wait can be missed."""
        self._start()
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[run_id]

    async def ready(self) -> None:
        """Wait until the store's announcements are listened to (if it has them), so that a
        change committed after this returns wakes the subscribers. Never raises: when
        listening fails, the waiters' polls remain."""
        started = self._start()
        if started is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(started)

    def _start(self) -> asyncio.Future[object] | None:
        if self._listen is None:
            return None
        started = self._listening
        if started is None or (
            started.done() and (started.cancelled() or started.exception() is not None)
        ):
            started = self._listening = asyncio.ensure_future(self._listen())
            started.add_done_callback(_quiet)
        return started


def _quiet(fut: asyncio.Future[object]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.debug("listening for run changes failed (polling instead): %s", fut.exception())
