"""App's queue methods: declaring queues and reading where they stand (a mixin of App, kept
apart so that App stays one screenful of concerns). Starting a run in a queue is App.start's
queue=... and its companions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable._errors import QueueError
from durable.queues import QueueSpec
from durable.queues._control import QueueInfo, list_queues, show_queue
from durable.queues._spec import queue_spec

if TYPE_CHECKING:
    from durable._engine import Engine
    from durable.runtime._registry import Registry


class QueueMethods:
    """Queues of an App: `app.queue(name, ...)`, `app.list_queues()`, `app.queue_info(name)`."""

    _registry: Registry

    @property
    def engine(self) -> Engine:
        raise NotImplementedError  # App's

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        partition_concurrency: int | None = None,
    ) -> QueueSpec:
        """Declare queue `name` (before the app opens): runs started with queue=name wait
        in it until it admits them. concurrency: runs of the queue admitted and unfinished at
        once across every worker (a run holds its slot until it ends); worker_concurrency:
        per worker; rate_limit=(starts, seconds): at most that many admissions in any window
        of that length; partition_concurrency: per partition_key. Admission is by priority
        (higher first), then fairly between partition keys, then oldest first."""
        spec = queue_spec(
            name,
            concurrency=concurrency,
            worker_concurrency=worker_concurrency,
            rate_limit=rate_limit,
            partition_concurrency=partition_concurrency,
        )
        existing = self._registry.queues.get(name)
        if existing is not None and existing != spec:
            raise QueueError(
                f"queue {name!r} is declared twice, differently ({existing} and {spec}); "
                "declare it once"
            )
        self._registry.queues[name] = spec
        return spec

    async def list_queues(self) -> list[QueueInfo]:
        """Every queue declared in the database: limits, waiting, running, oldest waiting."""
        return await list_queues(self.engine.client.store)

    async def queue_info(self, name: str) -> QueueInfo:
        """One queue (QueueError if none is declared under that name)."""
        return await show_queue(self.engine.client.store, name)
