"""Debounce (app.debounce): many calls with one (workflow, key) within `delay` seconds of each
other start one run, with the last call's input, `delay` seconds after the last call (or
`max_wait` after the first, whichever comes first).

A debounced start is a queued run (durable.queues) that waits in the internal queue
DEBOUNCE_QUEUE (no limits) or a declared one, keyed by the burst: its dedupe key is
burst_key(workflow, key). A later call while the run still waits (never admitted or claimed)
rearms it in one storage operation (Store.debounce_run: input, first event and ready_at
replaced, only while nobody took it); a call after a worker took it begins a new burst. The
pending run is a row like any queued run, so it survives every process being closed or killed
and is started by whichever worker admits it once ready_at comes.

Why the first event is rewritten rather than an "input replaced" event appended:
storage._debounce_ops (in short: the run has done nothing and nobody has read its log, and
every reader of logs keeps seeing one RunStarted with the input the run executes with).
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from durable._client import Client, RunHandle
from durable._codec import checked, encode_value
from durable._errors import InvalidInputError, QueueError
from durable._events import RunStarted, encode_event
from durable._ids import check_id
from durable.queues._spec import QueueSpec
from storage import EventRecord, NewRun, QueueRecord, Store

# Where debounced runs wait unless the call names a declared queue. Declared by the first
# debounce of each process (every worker admits by the stored row); app.queue refuses it.
DEBOUNCE_QUEUE = "durable.debounce"


@dataclass(frozen=True)
class Debounce:
    """A debounce call's options, checked: the user's key, the queue the run waits in,
    seconds after the last call, cap in seconds after the burst's first call."""

    key: str
    queue: str
    delay: float
    max_wait: float | None


def _seconds(what: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise QueueError(f"debounce {what} must be seconds >= 0 (e.g. 30 or 2.5), not {value!r}")
    return float(value)


def debounce_options(
    declared: Mapping[str, QueueSpec],
    key: object,
    delay: object,
    *,
    max_wait: object = None,
    queue: object = None,
) -> Debounce:
    """The checked options: QueueError (or InvalidIdError for the key) says what to fix."""
    checked_key = check_id("debounce key", key)
    seconds = _seconds("delay", delay)
    cap = None if max_wait is None else _seconds("max_wait", max_wait)
    if cap is not None and cap < seconds:
        raise QueueError(
            f"debounce max_wait ({cap:g} s) is shorter than delay ({seconds:g} s): the run "
            "would always start at max_wait; pass a max_wait >= delay, or none"
        )
    if queue is None:
        return Debounce(checked_key, DEBOUNCE_QUEUE, seconds, cap)
    if not isinstance(queue, str) or queue not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise QueueError(
            f"debounce queue {queue!r} is not declared in this application (declared: "
            f'{known}); declare it first with app.queue("{queue}", ...), or leave queue out'
        )
    return Debounce(checked_key, queue, seconds, cap)


def burst_key(workflow: str, key: str) -> str:
    """The dedupe key of (workflow, key)'s burst. It starts with a control character, which
    no user's dedupe key can hold (durable._ids), so debounced runs share a declared queue
    with keyed starts without meeting their keys; hashed, so any two ids fit the column."""
    digest = hashlib.blake2b(f"{workflow}\0{key}".encode(), digest_size=16).hexdigest()
    return f"\x1fdebounce:{digest}"


async def declare_internal_queue(store: Store) -> None:
    await store.put_queue(QueueRecord(DEBOUNCE_QUEUE, updated_at=time.time()))


async def debounce(
    client: Client, workflow: str | Callable[..., Any], input: Any, options: Debounce
) -> RunHandle:
    """Start or rearm the run of (workflow, options.key)'s burst; its handle."""
    wf = client.registry.workflow(workflow, None)
    if not wf.takes_input and input is not None:
        raise TypeError(f"workflow {wf.name!r} takes no input, but input was given")
    data = encode_value(input, f"the input of workflow {wf.name!r}")
    if wf.takes_input and wf.dag is None:
        checked(data, wf.input_type, f"the input of workflow {wf.name!r}", InvalidInputError)
    now = time.time()
    rid = uuid.uuid4().hex
    started = RunStarted(
        workflow=wf.name,
        version=wf.version,
        input=msgspec.Raw(data),
        fingerprint=wf.fingerprint,
        kind="dag" if wf.dag is not None else "",
    )
    run = NewRun(
        run_id=rid,
        workflow=wf.name,
        version=wf.version,
        input=data,
        created_at=now,
        queue=options.queue,
        dedupe_key=burst_key(wf.name, options.key),
        ready_at=now + options.delay,
    )
    first = EventRecord(rid, 1, "RunStarted", encode_event(started), now)
    record, _ = await client.store.debounce_run(run, first, max_wait=options.max_wait)
    if client.worker is not None:
        client.worker.wake()
    return RunHandle(client, record.run_id, client.registry.get(record.workflow, record.version))
