"""The DAG rows of recovery_cost.py: resuming a DAG run by folding its whole log, or from its
snapshot (durable._snapshot) plus the events after it.

The log is synthesised like the others (a matrix's instances, StepStarted/StepCompleted each,
encoded by the engine), and so is its snapshot: the fold of the log up to the seq where the
worker's rule (Snapshots.appended: at least `every` events and a quarter of the steps since the
previous one) took its last one, stored by the real Store.put_snapshot. Timed in a fresh
process like the others: read (get_snapshot, then read_events after it; or the whole
history), fold (decoding the snapshot and the tail's events and folding them, or decoding and
folding the whole history, as durable._recovery.load_state does). A DAG has no
code to replay; its scheduler's rebuild (DagExecutor._rebuild) is not timed here.
"""

from __future__ import annotations

import time
import uuid

import msgspec

from durable._codec import encode_value
from durable._events import (
    Event,
    RunStarted,
    StepCompleted,
    StepStarted,
    decode_event,
    encode_event,
)
from durable._gcpause import gc_paused
from durable._recovery import fold_records
from durable._snapshot import decode_state, make_snapshot, usable_state
from durable._state import RunState, apply
from storage import EventRecord, NewRun, open_store

DAG_ROWS = ("dag_full", "dag_snapshot")
EVERY = 1000  # WorkerOptions.snapshot_every's default


def synthesise(events: int) -> list[Event]:
    body: list[Event] = [
        RunStarted(
            workflow="bench_dag",
            version="1",
            input=msgspec.Raw(encode_value(None, "input")),
            fingerprint="f" * 64,
            kind="dag",
        )
    ]
    for pos in range((events - 1) // 2):
        params = msgspec.Raw(encode_value({"n": pos}, "step input"))
        body.append(StepStarted(pos=pos, name=f"fan[n={pos}]", attempt=1, input=params))
        out = {"stdout": f"{pos}\n", "exit_code": 0}
        body.append(StepCompleted(pos=pos, result=msgspec.Raw(encode_value(out, "result"))))
    return body


def last_snapshot_seq(body: list[Event]) -> int:
    """Where the worker's rule took its last snapshot of this log."""
    last, steps = 1, 0
    for seq, event in enumerate(body, start=1):
        steps += isinstance(event, StepStarted)
        if seq - last >= max(EVERY, steps // 4):
            last = seq
    return last


async def store_log(url: str, events: int) -> tuple[str, int, int]:
    """(run id, events, 0: no positions to replay), with its snapshot stored."""
    body = synthesise(events)
    run_id = uuid.uuid4().hex
    now = time.time()
    records = [
        EventRecord(run_id, seq, type(e).__name__, encode_event(e), now + seq * 1e-6)
        for seq, e in enumerate(body, start=1)
    ]
    new = NewRun(run_id, "bench_dag", "1", encode_value(None, "input"), created_at=now)
    cut = last_snapshot_seq(body)
    state = RunState(run_id=run_id)
    for seq, event in enumerate(body[:cut], start=1):
        apply(state, seq, now, event)  # type: ignore[arg-type]
    store = open_store(url)
    await store.open()
    try:
        _, created = await store.create_run(new, records[0], history=records[1:])
        assert created
        await store.put_snapshot(make_snapshot(state, now))
    finally:
        await store.close()
    return run_id, len(records), 0


async def recover(url: str, run_id: str, snapshot: bool) -> dict[str, float]:
    store = open_store(url)
    await store.open()
    try:
        began = time.perf_counter()
        with gc_paused():  # as durable._recovery.load_state
            if snapshot:
                stored = await store.get_snapshot(run_id)
                assert stored is not None
                tail = await store.read_events(run_id, stored.seq)
                read = time.perf_counter()
                state = usable_state(stored, run_id, 2**62)  # decode_state, checked
                assert state is not None
                for record in tail:  # as load_state folds a snapshot's tail
                    apply(state, record.seq, record.created_at, decode_event(record))
            else:
                records = await store.read_history(run_id)
                read = time.perf_counter()
                state = fold_records(run_id, records)
            folded = time.perf_counter()
    finally:
        await store.close()
    assert state.last_seq > 1 and not state.finished
    return {
        "read": read - began,
        "fold": folded - read,
        "replay": 0.0,
        "total": folded - began,
        "positions": 0,
    }


__all__ = ["DAG_ROWS", "decode_state", "recover", "store_log"]
