"""App's queue methods: declaring queues and reading where they stand (a mixin of App, kept
apart so that App stays one screenful of concerns). Starting a run in a queue is App.start's
queue=... and its companions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durable._client import RunHandle
from durable._errors import QueueError
from durable.queues import QueueSpec
from durable.queues._control import QueueInfo, list_queues, show_queue
from durable.queues._debounce import (
    DEBOUNCE_QUEUE,
    debounce,
    debounce_options,
    declare_internal_queue,
)
from durable.queues._spec import queue_spec

if TYPE_CHECKING:
    from durable._engine import Engine
    from durable.runtime._registry import Registry
    from sdk._app import WorkflowRef


class QueueMethods:
    """Queues of an App: `app.queue(name, ...)`, `app.debounce(...)`, `app.list_queues()`,
    `app.queue_info(name)`."""

    _registry: Registry
    # The engine whose database has the internal debounce queue declared (once per open).
    _debounce_declared: Engine | None = None

    def _ref(self, workflow: WorkflowRef) -> str | Callable[..., Any]:
        raise NotImplementedError  # App's

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
        if name == DEBOUNCE_QUEUE:
            raise QueueError(
                f"queue name {name!r} is reserved for app.debounce's runs; choose another name"
            )
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

    async def debounce(
        self,
        workflow: WorkflowRef,
        key: str,
        delay: float,
        input: Any = None,
        *,
        max_wait: float | None = None,
        queue: str | None = None,
    ) -> RunHandle:
        """Start `workflow` once for a burst of calls: every call with the same (workflow,
        key) while the run still waits replaces its input and puts its start off to `delay`
        seconds after this call, but never later than `max_wait` seconds after the burst's
        first call. A call after a worker has started the run begins a new burst (a new
        run). Returns the handle of the run that carries this call's input. The run waits in
        an internal queue without limits, or in the declared `queue`. Durable: the waiting
        run is stored, so closing or killing every process neither loses nor starts it early.
        QueueError for a negative delay, max_wait < delay or an undeclared queue;
        InvalidIdError for a key that is not an id."""
        options = debounce_options(
            self._registry.queues, key, delay, max_wait=max_wait, queue=queue
        )
        engine = self.engine
        if options.queue == DEBOUNCE_QUEUE and self._debounce_declared is not engine:
            await declare_internal_queue(engine.client.store)
            self._debounce_declared = engine
        return await debounce(engine.client, self._ref(workflow), input, options)
