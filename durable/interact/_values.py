"""get_event / list_events: a run's values (ctx.set_event), from any process.

The value is a projection row committed with its ValueSet event, so one indexed read answers.
A waiter subscribes to the in-process notifier *before* reading (an append by a worker in this
process wakes it at commit), then waits on it or on a backoff capped by client.poll_interval
(a worker in another process: SQLite file or PostgreSQL; a store that announces other
processes' commits to the notifier wakes it sooner).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from durable._codec import decode_value
from durable._errors import EventNotSetError, RunNotFoundError
from durable._ids import check_lookup
from storage import FINAL_STATUSES, RunValue

if TYPE_CHECKING:
    from durable._client import Client


async def get_event(client: Client, run_id: str, key: str, *, timeout: float | None = None) -> Any:
    """The latest value of `key` the run set; waits until it is set. TimeoutError after
    `timeout` seconds (None: no limit; 0: look once), EventNotSetError if the run ended
    without setting it, RunNotFoundError if there is no such run."""
    found = await wait_value(client, run_id, key, timeout=timeout)
    return decode_value(found.value)


async def wait_value(
    client: Client, run_id: str, key: str, *, timeout: float | None = None
) -> RunValue:
    """get_event's row (its seq and time too: the API and CLI show them)."""
    check_lookup("run id", run_id)
    check_lookup("event key", key)
    if timeout is not None and not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    store = client.store
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    delay = 0.02
    with client.notifier.subscribe(run_id) as changed:
        while True:
            changed.clear()  # before reading: a commit after the read still wakes us
            found = await store.get_value(run_id, key)
            if found is not None:
                return found
            record = await store.get_run(run_id)
            if record is None:
                raise RunNotFoundError(run_id)
            if record.status in FINAL_STATUSES:
                # Set in a commit between our two reads, before the run's end: look again.
                found = await store.get_value(run_id, key)
                if found is not None:
                    return found
                known = [v.key for v in await store.list_values(run_id)]
                raise EventNotSetError(run_id, key, record.status, known)
            wait = delay
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(
                        f"run {run_id!r} has not set event {key!r} within {timeout:g} s "
                        f"(it is {record.status})"
                    )
                wait = min(wait, left)
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except TimeoutError:
                delay = min(delay * 2, client.poll_interval)


async def list_values(client: Client, run_id: str) -> list[RunValue]:
    check_lookup("run id", run_id)
    values = await client.store.list_values(run_id)
    if not values and await client.store.get_run(run_id) is None:
        raise RunNotFoundError(run_id)
    return values


async def list_events(client: Client, run_id: str) -> dict[str, Any]:
    """Every key the run set, with its latest value (ordered by key)."""
    return {v.key: decode_value(v.value) for v in await list_values(client, run_id)}
