"""The single writer of a SQLite database in this process, and its group commit.

All writes of the process go through one connection. Writes made during one turn of the event
loop are handed off together at the end of the turn:

- Several writes (many runs taking a step at once): a writer thread applies them in one
  BEGIN IMMEDIATE ... COMMIT and wakes all their futures with a single call into the loop. N runs
  share one fsync, and the loop goes on preparing the next batch while this one is on disk.
- A single write, with nothing earlier still in the thread (a lone sequential run): it is
  committed right away on the loop thread. Nothing else is waiting for the loop then, and the
  two thread wake-ups a hand-off costs (measured here: ~65 us of the loop's CPU per commit,
  against ~16 us for everything else the engine does per step) would be pure overhead. The
  connection has busy_timeout=0, so another process holding the write lock never blocks the
  loop: the write then goes to the thread, which waits for the lock (storage._sqlite_lock: it
  says so after a second, and gives up at the store's lock_timeout if it has one).

Either way one run's writes are applied in the order they were made: the inline path is taken
only when the thread holds none of the writes made before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from storage._errors import DatabaseUnavailableError, StorageError, StoreClosedError
from storage._outcomes import Outcome, resolve
from storage._sqlite_lock import Busy, LockWaits, begin_immediate

log = logging.getLogger("durable.storage.sqlite")

Op = Callable[[sqlite3.Cursor], Any]
_Item = tuple[Op, "asyncio.Future[Any]"]
_Items = list[_Item]
_Outcome = Outcome

# A batch bigger than this is split: a huge transaction delays every waiter in it.
_MAX_BATCH = 2000


class SQLiteWriter:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], *, inline: bool, waits: LockWaits
    ) -> None:
        self._connect = connect
        self._inline = inline
        self._waits = waits
        self._queue: queue.SimpleQueue[_Items | None] = queue.SimpleQueue()
        self._outbox: _Items = []
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._conn_lock = threading.Lock()  # whoever applies a batch holds the connection
        self._in_thread = 0  # writes handed to the thread and not yet resolved (loop thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # Counters for benchmarks and tests: how well group commit is batching.
        self.commits = 0
        self.writes = 0
        self.inline_commits = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._conn = self._connect()  # fails here, in the caller, if the file can't be opened
        # SQLite's busy handler would sleep inside a statement, on whichever thread runs it:
        # on the loop thread that would stall every run. begin_immediate waits instead, on
        # the thread.
        self._conn.execute("PRAGMA busy_timeout = 0")
        self._thread = threading.Thread(target=self._run, name="durable-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = self._loop
        if loop is None or self._closed:
            raise StoreClosedError("the SQLite store is not open")
        fut: asyncio.Future[Any] = loop.create_future()
        if not self._outbox:
            loop.call_soon(self._hand_off)
        self._outbox.append((op, fut))
        return fut

    def _hand_off(self) -> None:
        items, self._outbox = self._outbox, []
        if not items:
            return
        if self._inline and len(items) == 1 and self._in_thread == 0 and self._try_inline(items):
            return
        self._in_thread += len(items)
        self._queue.put(items)

    def _try_inline(self, items: _Items) -> bool:
        conn = self._conn
        if conn is None or not self._conn_lock.acquire(blocking=False):
            return False
        try:
            outcomes = self._apply(conn, items, wait_for_lock=False)
        except Busy:
            return False
        finally:
            self._conn_lock.release()
        self.inline_commits += 1
        resolve(outcomes)
        return True

    async def stop(self) -> None:
        """Apply everything already queued, then stop the thread and close the connection."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._waits.closing_at = time.monotonic()
        self._hand_off()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = first
            stop = False
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            with self._conn_lock:
                outcomes = self._apply(conn, batch, wait_for_lock=True)
            self._deliver(outcomes, len(batch))
            if stop:
                return

    def _apply(
        self, conn: sqlite3.Connection, batch: _Items, *, wait_for_lock: bool
    ) -> list[_Outcome]:
        """Apply a batch in one transaction; the outcome of each write, in order."""
        outcomes: list[_Outcome] = []
        try:
            begin_immediate(conn, self._waits, wait=wait_for_lock)
        except Busy:
            raise
        except Exception as exc:  # gave up waiting for the lock, or the driver refused: the
            # batch fails whole, with nothing written
            return [(fut, False, self._translate(exc)) for _, fut in batch]
        try:
            cur = conn.cursor()
            for op, fut in batch:
                try:
                    outcomes.append((fut, True, op(cur)))
                except StorageError as exc:
                    # An op that refuses (seq conflict, fencing) has changed nothing: the rest
                    # of the batch commits without it.
                    outcomes.append((fut, False, exc))
            conn.execute("COMMIT")
            self.commits += 1
            self.writes += len(batch)
            return outcomes
        except Exception as exc:  # an unexpected driver error: isolate the culprit
            _rollback(conn)
            if len(batch) > 1:
                log.warning("batch of %d writes failed (%s); retrying one by one", len(batch), exc)
                return [o for item in batch for o in self._apply(conn, [item], wait_for_lock=True)]
            return [(batch[0][1], False, self._translate(exc))]

    def _translate(self, exc: Exception) -> Exception:
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, sqlite3.DatabaseError):
            return DatabaseUnavailableError(f"SQLite write to {self._waits.path} failed: {exc}")
        return exc

    def _deliver(self, outcomes: list[_Outcome], count: int) -> None:
        loop = self._loop
        assert loop is not None
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._resolve_from_thread, outcomes, count)

    def _resolve_from_thread(self, outcomes: list[_Outcome], count: int) -> None:
        self._in_thread -= count
        resolve(outcomes)


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
