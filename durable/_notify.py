"""In-process wake-ups for watchers and waiters: an append that became durable wakes whoever
follows that run in this process. Other processes' appends are seen by polling."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, run_id: str) -> None:
        waiters = self._waiters.get(run_id)
        if waiters:
            for event in waiters:
                event.set()

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set on every durable append to the run. Subscribe *before* reading, so no
        append between the read and the wait can be missed."""
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
