"""The LISTEN side of a PostgreSQL store: one pooled connection, two channels.

- The work channel (`durable_runs[_schema]`, empty payloads): a run became claimable.
  wait_for_work() lets an idle worker sleep until then.
- The changes channel (`durable_changes[_schema]`, payload: a run id): something that waiters
  on that run care about committed: an inbox item sent to it (a signal, a cancel, a child's
  end, a completion), its end, or an append with a projection (the rule is one function:
  storage._postgres_writer.announced). Whoever registered with on_run_change() is called
  with the run id, in the event loop.

Both share the connection, which is acquired lazily: by the first wait_for_work() (a worker's
idle claim loop) or the first listen_runs() (a waiter, or an engine running a worker). A
process that never waits never listens. A pool of one connection cannot spare one: then
nothing listens and everyone relies on polling.

A connection that dies (a server restart) is replaced: by the next wait_for_work(), and, for
the changes channel, by a reconnect task started when the death is noticed. Announcements
made while nobody listened are lost; the waiters' polls (with backoff) cover that gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from storage._errors import StorageError
from storage._postgres_writer import is_dead

log = logging.getLogger("durable.storage.postgres")

WORK_CHANNEL = "durable_runs"
CHANGES_CHANNEL = "durable_changes"
_NAMEDATALEN = 63  # PostgreSQL cuts identifiers (LISTEN's channel) at 63 bytes
RECONNECT_DELAY = 1.0


def channel_name(base: str, schema: str | None) -> str:
    """One channel per schema: several durable deployments may share a database. A name too
    long for PostgreSQL gets a digest of the schema instead (LISTEN would cut it, pg_notify
    would refuse it)."""
    if schema is None:
        return base
    name = f"{base}_{schema}"
    if len(name.encode()) <= _NAMEDATALEN:
        return name
    return f"{base}_{hashlib.sha256(schema.encode()).hexdigest()[:24]}"


class Listener:
    def __init__(
        self,
        pool: Any,
        *,
        work_channel: str,
        changes_channel: str,
        can_listen: bool,
        translate: Callable[[BaseException, str], BaseException],
    ) -> None:
        self._pool = pool
        self.work_channel = work_channel
        self.changes_channel = changes_channel
        self._can_listen = can_listen
        self._translate = translate
        self.conn: Any = None
        self.work = asyncio.Event()
        self._callbacks: list[Callable[[str], None]] = []
        self._changes_wanted = False
        self._lock = asyncio.Lock()
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------------ work channel

    async def wait_for_work(self, timeout: float) -> bool:
        """See PostgresStore.wait_for_work."""
        if not self._can_listen:
            await asyncio.sleep(timeout)
            return False
        if self.conn is None or is_dead(self.conn):
            # First call, or its connection died (a server restart): listen on a fresh one.
            # Work may have arrived meanwhile, so report a wake-up.
            await self._connect()
            return True
        try:
            await asyncio.wait_for(self.work.wait(), timeout)
        except TimeoutError:
            return False
        self.work.clear()
        return True

    def _work_notified(self, *_: object) -> None:
        self.work.set()

    # ------------------------------------------------------------------------ changes channel

    def on_run_change(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    async def listen_runs(self) -> bool:
        """Make sure the changes channel is listened to; False if it cannot be (a pool of one)."""
        if not self._can_listen:
            return False
        self._changes_wanted = True
        if self.conn is None or is_dead(self.conn):
            await self._connect()
        return True

    def _changed(self, _conn: object, _pid: object, _channel: object, payload: object) -> None:
        for callback in list(self._callbacks):
            try:
                callback(str(payload))
            except Exception:  # one subscriber's bug must not silence the others
                log.exception("a run-change callback failed")

    # ------------------------------------------------------------------------ connection

    async def _connect(self) -> None:
        async with self._lock:  # a waiter and the claim loop may both find it missing
            if self.conn is not None and not is_dead(self.conn):
                return
            await self._drop()
            try:
                conn = await self._pool.acquire()
            except Exception as exc:
                raise self._translate(exc, "listen") from None
            try:
                await conn.add_listener(self.work_channel, self._work_notified)
                await conn.add_listener(self.changes_channel, self._changed)
                conn.add_termination_listener(self._terminated)
            except BaseException as exc:  # cancelled too: the connection must go back
                await self._pool.release(conn)
                if isinstance(exc, Exception):
                    raise self._translate(exc, "listen") from None
                raise
            self.conn = conn

    async def _drop(self) -> None:
        """Let the pool forget a dead listening connection."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.terminate()
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    def _terminated(self, *_: object) -> None:
        if self._closed or not self._changes_wanted:
            return  # the claim loop's next wait_for_work replaces it
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = asyncio.ensure_future(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(RECONNECT_DELAY)
            try:
                await self.listen_runs()
                return
            except StorageError as exc:
                log.debug("re-listening for run changes failed (will retry): %s", exc)

    async def close(self) -> None:
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnect
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.remove_termination_listener(self._terminated)
            await conn.remove_listener(self.work_channel, self._work_notified)  # UNLISTEN
            await conn.remove_listener(self.changes_channel, self._changed)
            await self._pool.release(conn)
        except Exception:  # its connection is gone (or detached): nothing to hand back
            with contextlib.suppress(Exception):
                conn.terminate()
