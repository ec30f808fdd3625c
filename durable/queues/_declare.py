"""Writing an engine's queue declarations to the store when it opens: every process that
declares a queue writes its limits (the newest declaration wins), and every worker's claim
admits by what is stored."""

from __future__ import annotations

import time
from collections.abc import Iterable

from durable.queues._spec import QueueSpec
from storage import Store


async def declare(store: Store, specs: Iterable[QueueSpec]) -> None:
    now = time.time()
    for spec in specs:
        await store.put_queue(spec.record(now))
