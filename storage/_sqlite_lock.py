"""Waiting for SQLite's write lock when another process holds it.

Only one connection at a time may write a SQLite database; every write of this store begins
with BEGIN IMMEDIATE, which fails at once while another process holds the lock (our
connections have busy_timeout 0 for writes: SQLite's busy handler would sleep inside the
statement, on whatever thread runs it). So the wait happens here, on the writer's thread,
polling with backoff, and it is never silent: after NOTICE_AFTER seconds the store says so once
(its on_lock_wait callback, by default a log warning), then again every REMIND_EVERY seconds;
with a lock_timeout it gives up then, with DatabaseUnavailableError saying that nothing was
written. Without one (the default: a worker must not fail runs because a sqlite3 shell sat in a
transaction) it waits as long as it takes.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage._errors import DatabaseUnavailableError

log = logging.getLogger("durable.storage.sqlite")

NOTICE_AFTER = 1.0
REMIND_EVERY = 30.0
# Once the store is closing (Ctrl-C on a command, a worker stopping), a write still waiting for
# another process's lock waits at most this long more: closing must not hang on someone else.
CLOSING_GRACE = 1.0


class Busy(Exception):
    """The write lock is taken and the caller asked not to wait."""


@dataclass(slots=True)
class LockWaits:
    """How this store's writes wait for another process's write lock."""

    path: str
    timeout: float | None = None  # seconds before giving up; None: wait as long as it takes
    notice: Callable[[str], None] | None = None  # told when a wait gets long (None: log it)
    closing_at: float | None = None  # time.monotonic() when the store began closing

    def tell(self, message: str) -> None:
        if self.notice is None:
            log.warning("%s", message)
        else:
            self.notice(message)


def is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def begin_immediate(conn: sqlite3.Connection, waits: LockWaits, *, wait: bool = True) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock as the module says; Busy if not `wait`."""
    started: float | None = None
    told = 0.0  # how long we had waited when we last said so
    delay = 0.001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            if not wait:
                raise Busy() from None
        now = time.monotonic()
        if started is None:
            started = now
        waited = now - started
        if waits.closing_at is not None and now - waits.closing_at >= CLOSING_GRACE:
            raise DatabaseUnavailableError(
                f"the store of SQLite database {waits.path} was closed while a write was still "
                f"waiting for the write lock another process holds ({waited:.1f}s); nothing was "
                "written"
            )
        timeout = waits.timeout
        if timeout is not None and waited >= timeout:
            raise DatabaseUnavailableError(
                f"gave up waiting for the write lock of SQLite database {waits.path} after "
                f"{waited:.1f}s (lock_timeout {timeout:g}s): another process held it all that "
                "time, and nothing was written. It may be a worker in a long transaction or a "
                "sqlite3 shell with a transaction open (`fuser` or `lsof` on the file shows "
                "which); try again once it is done, or allow a longer wait with the URL option "
                "?lock_timeout=SECONDS"
            )
        if waited >= (told + REMIND_EVERY if told else NOTICE_AFTER):
            waits.tell(_waiting(waits, waited, first=not told))
            told = waited
        pause = min(delay, 0.1)
        if timeout is not None:
            pause = max(0.0, min(pause, timeout - waited))
        time.sleep(pause)
        delay *= 2


def _waiting(waits: LockWaits, waited: float, *, first: bool) -> str:
    limit = "as long as it takes" if waits.timeout is None else f"up to {waits.timeout:g}s"
    if first:
        return (
            f"waiting for the database write lock held by another process ({waits.path}; "
            f"will wait {limit})"
        )
    return (
        f"still waiting for the database write lock held by another process ({waits.path}; "
        f"{waited:.0f}s so far, will wait {limit})"
    )
