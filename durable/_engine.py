"""An engine: a store, a registry, an optional in-process worker and a client, opened and
closed together. The SDK's App is a thin facade over it; the CLI builds one from a URL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from durable._client import Client
from durable._definitions import DefinitionSync
from durable._notify import Notifier
from durable._options import WorkerOptions
from durable.runtime._registry import Registry
from storage import (
    DEFAULT_URL,
    DatabaseOpenError,
    RunChanges,
    StorageError,
    Store,
    open_store,
)

if TYPE_CHECKING:
    from durable._worker import Worker
    from durable.queues._spec import QueueSpec

log = logging.getLogger("durable")

URL_ENV = "DURABLE_DATABASE_URL"


def resolve_url(url: str | None) -> str:
    """The database URL: the one given, else $DURABLE_DATABASE_URL, else ./durable.db."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


@runtime_checkable
class AppLike(Protocol):
    """What the CLI needs of an application object loaded by 'module:attr' (the SDK's App)."""

    @property
    def registry(self) -> Registry: ...

    @property
    def database_url(self) -> str: ...

    @property
    def worker_options(self) -> WorkerOptions: ...


class Engine:
    def __init__(
        self,
        url: str | None,
        registry: Registry,
        *,
        run_worker: bool = True,
        options: WorkerOptions | None = None,
        follow_definitions: bool | None = None,
        schedules: bool = True,
    ) -> None:
        """`follow_definitions`: keep loading the workflow definitions stored in the database
        (registered through the HTTP API) into the registry, every second; by default when
        the engine runs a worker. `schedules`: declare the registry's cron schedules and, with
        a worker, fire them (`durable run FILE` executes one run: it does neither)."""
        self.url = resolve_url(url)
        self.registry = registry
        self.options = options or WorkerOptions()
        self.run_worker = run_worker
        self.store: Store = open_store(self.url)
        self.notifier = Notifier()
        self.worker: Worker | None = None
        self._client: Client | None = None
        self.definitions = DefinitionSync(self.store, registry)
        self.follow_definitions = run_worker if follow_definitions is None else follow_definitions
        self._follower: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self.schedules = schedules
        self._declared_queues: dict[str, QueueSpec] = {}  # as written to the store
        self._announced_here = False  # _run_changed registered with the store

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the engine is not open: use 'async with app:' first")
        return self._client

    @property
    def is_open(self) -> bool:
        return self._client is not None

    async def open(self) -> None:
        if self._client is not None:
            raise RuntimeError("the engine is already open")
        await self.store.open()
        # A SQLite file this process may not write opens read-only (reading works); a worker
        # writes every step, so it is refused now rather than failing at every poll.
        read_only = getattr(self.store, "read_only", None)
        if self.run_worker and read_only:
            await self.store.close()
            raise DatabaseOpenError(
                f"cannot run a worker on {self.store.url}: the database is read-only "
                f"({read_only}); a worker records every step in it"
            )
        if self.follow_definitions:
            await self.definitions.sync()  # before the worker's first claim names its workflows
            self._follower = asyncio.get_running_loop().create_task(self._follow())
        if self.run_worker:
            from durable._worker import Worker  # the DAG interpreter too: only to execute

            self.worker = Worker(
                self.store, self.registry, self.notifier, self.options, database_url=self.url
            )
        self._client = Client(self.store, self.registry, self.notifier, self.worker)
        if isinstance(self.store, RunChanges):
            await self._listen_runs(self.store)
        if self.registry.queues and not read_only:
            from durable.queues._declare import declare as declare_queues

            try:
                await declare_queues(self.store, self.registry.queues.values())
            except BaseException:
                await self.close()
                raise
            self._declared_queues = dict(self.registry.queues)
        if self.schedules and self.registry.schedules and not read_only:
            from durable.schedules._loop import declare

            try:
                await declare(self._client, list(self.registry.schedules.values()))
            except BaseException:
                await self.close()
                raise
        if self.worker is not None:
            self.worker.start_child_run = self._client.start_child
            self.worker.dag_services.start_queued = self._start_queued
            await self.worker.start()  # its first claim picks up every unfinished run
            if self.schedules:
                self._scheduler = asyncio.get_running_loop().create_task(self._schedules())

    async def close(self) -> None:
        if self._client is None:
            return
        try:
            if self._follower is not None:
                self._follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._follower
                self._follower = None
            if self._scheduler is not None:
                self._scheduler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._scheduler
                self._scheduler = None
            if self.worker is not None:
                await self.worker.stop()
        finally:
            self._client = None
            self.worker = None
            self.notifier.listen_with(None)
            await self.store.close()

    async def _listen_runs(self, store: RunChanges) -> None:
        """Other processes' commits that matter to a run (a signal, its end, ...) are announced
        by the store (PostgreSQL): wake this process's waiters on it, and the worker if it
        executes it. A worker listens from the start; a client only once something waits."""
        if not self._announced_here:
            store.on_run_change(self._run_changed)
            self._announced_here = True
        self.notifier.listen_with(store.listen_runs)
        if self.worker is not None:
            with contextlib.suppress(StorageError):  # its polls remain
                await store.listen_runs()

    def _run_changed(self, run_id: str) -> None:
        self.notifier.notify(run_id)
        if self.worker is not None:
            self.worker.wake_inbox_for(run_id)

    async def declare_new_queues(self) -> None:
        """Write the queues declared since the engine opened to the store (a DAG registered
        while it is open: App.start registers a builder then): the claim admits only by
        stored queues, so a run started in one of them would wait for ever."""
        new = [s for n, s in self.registry.queues.items() if self._declared_queues.get(n) != s]
        if not new or getattr(self.store, "read_only", None):
            return
        from durable.queues._declare import declare as declare_queues

        await declare_queues(self.store, new)
        self._declared_queues.update((spec.name, spec) for spec in new)

    async def _start_queued(
        self, workflow: str, input: Any, run_id: str, version: str, parent: str, queue: str
    ) -> tuple[str, str, str]:
        """Start a queued DAG step instance's child run in `queue` (see dag/_queued). A queue
        declared after the engine opened (a definition stored through the HTTP API and loaded
        since) is written to the store first: the claim admits only by what is stored."""
        from durable.queues._declare import declare as declare_queues
        from durable.queues._options import QueueStart

        spec = self.registry.queues.get(queue)
        if spec is not None and self._declared_queues.get(queue) != spec:
            await declare_queues(self.store, [spec])
            self._declared_queues[queue] = spec
        return await self.client.start_child(
            workflow, input, run_id, version, parent, queued=QueueStart(queue)
        )

    async def _schedules(self) -> None:
        from durable.schedules._loop import run_schedules

        await run_schedules(self.client, self.registry.schedules)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(DEFINITIONS_POLL)
            try:
                await self.definitions.sync()
            except Exception:  # a database hiccup: the next round tries again
                log.warning("could not read the stored workflow definitions", exc_info=True)


# How often an engine that follows the stored definitions looks for new ones (one count query).
DEFINITIONS_POLL = 1.0
