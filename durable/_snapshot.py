"""Snapshots of a run's folded state, so that resuming a long DAG run folds only its tail.

A DAG run has no code to re-execute: its recovery is read + decode + fold of its whole log, then
the scheduler's rebuild. Every `snapshot_every` events (WorkerOptions) its executor encodes the
state as of that seq and, once the events up to it are durable, stores it (one row per run,
durable_snapshots). A resume reads the snapshot, checks it (FOLD_VERSION, its checksum, that it
is this run's, that the log holds its seq) and folds the events after it; anything wrong and it
folds the whole log as before. A snapshot is a cache: writing one may fail (logged), never the
run.

FOLD_VERSION names the meaning of apply() and the shape of RunState: bump it whenever either
changes (tests/dag/test_snapshots.py pins the fields); snapshots of another version are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import fields
from typing import Any

import msgspec

from durable._errors import ErrorInfo
from durable._events import (
    ChildCompleted,
    Continuation,
    ExternalCompleted,
    ExternalStarted,
    MarkerRecorded,
)
from durable._state import RunState, SignalState, StepState, WaitState
from durable._state_updates import UpdateState
from storage import SnapshotRecord, Store

log = logging.getLogger("durable.snapshots")

FOLD_VERSION = 1


# RunState as a msgspec Struct (same field names and order: the tests check it), its steps as
# rows: msgspec decodes no `msgspec.Raw | None` (a step's input and result, the run's), so
# those travel as bytes and are wrapped again. The other fields keep their types (WaitState,
# SignalState are decoded by msgspec itself). Encoding and decoding cost about 1 us per step.
_StepRow = tuple[
    int,  # pos
    str,  # name
    str,  # status
    int,  # attempts
    int,  # failures
    int,  # starts
    float | None,  # started_at
    float | None,  # finished_at
    bytes | None,  # input
    bytes | None,  # result
    ErrorInfo | None,  # error
    float | None,  # next_attempt_at
    int,  # retry_base
    int,  # done_seq
]


class _Run(msgspec.Struct, array_like=True):
    run_id: str
    workflow: str
    version: str
    input: bytes | None
    parent_run_id: str | None
    fingerprint: str
    parallelism: int | None
    status: str
    steps: list[_StepRow]
    markers: dict[int, MarkerRecorded]
    result: bytes | None
    error: ErrorInfo | None
    cancel_requested: bool
    cancel_reason: str
    cancel_delivered: bool
    deadline: float | None
    waits: dict[int, WaitState]
    signals: dict[int, SignalState]
    children: dict[str, ChildCompleted]
    inbox_ids: set[int]
    fingerprints: list[tuple[int, str]]
    created_at: float | None
    finished_at: float | None
    last_seq: int
    forked_from: str | None
    fork_point: str
    kind: str
    resumed: list[int]
    children_asked: set[str]
    forgotten: set[int]
    generation: int
    history_start: int
    continuation: Continuation | None
    continued_as: int
    externals: dict[int, ExternalStarted]
    external_ends: dict[int, ExternalCompleted]
    commands: dict[int, str]
    streams_closed: set[str]
    unconsumed: dict[str, dict[int, None]]
    child_waits: dict[str, list[int]]
    updates: dict[str, UpdateState]
    first_seq: dict[int, int]


_RUN_FIELDS = tuple(f.name for f in fields(RunState))
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Run)


def _bytes(value: msgspec.Raw | None) -> bytes | None:
    return None if value is None else bytes(value)


def _raw(value: bytes | None) -> msgspec.Raw | None:
    return None if value is None else msgspec.Raw(value)


def encode_state(state: RunState) -> bytes:
    if state.updates:
        # Only DAG runs are snapshotted, and they refuse updates; an update's Raw fields would
        # not decode back (msgspec decodes no `Raw | None`): refused rather than lost.
        raise ValueError(f"run {state.run_id!r} has updates: its state is not snapshotted")
    steps = [
        (
            s.pos,
            s.name,
            s.status,
            s.attempts,
            s.failures,
            s.starts,
            s.started_at,
            s.finished_at,
            None if s.input is None else bytes(s.input),
            None if s.result is None else bytes(s.result),
            s.error,
            s.next_attempt_at,
            s.retry_base,
            s.done_seq,
        )
        for s in state.steps.values()
    ]
    values: list[Any] = [getattr(state, name) for name in _RUN_FIELDS]
    run = _Run(*values)
    run.steps = steps
    run.input, run.result = _bytes(state.input), _bytes(state.result)
    return _encoder.encode(run)


def decode_state(data: bytes) -> RunState:
    """The state encode_state() encoded; msgspec.DecodeError/ValidationError if it is not."""
    run = _decoder.decode(data)
    steps: dict[int, StepState] = {}
    raw = msgspec.Raw
    for row in run.steps:
        step = StepState(*row)  # type: ignore[arg-type]  # input and result: bytes, for now
        if step.input is not None:
            step.input = raw(step.input)
        if step.result is not None:
            step.result = raw(step.result)
        steps[step.pos] = step
    values: list[Any] = [getattr(run, name) for name in _RUN_FIELDS]
    state = RunState(*values)
    state.steps = steps
    state.input, state.result = _raw(run.input), _raw(run.result)
    return state


def snapshot_checksum(run_id: str, seq: int, fold_version: int, data: bytes) -> int:
    head = f"{run_id}\x00{seq}\x00{fold_version}\x00".encode()
    return zlib.crc32(data, zlib.crc32(head))


def make_snapshot(state: RunState, now: float) -> SnapshotRecord:
    data = encode_state(state)
    seq = state.last_seq
    checksum = snapshot_checksum(state.run_id, seq, FOLD_VERSION, data)
    return SnapshotRecord(state.run_id, seq, FOLD_VERSION, data, checksum, now)


def usable_state(record: SnapshotRecord | None, run_id: str, last_seq: int) -> RunState | None:
    """The state a stored snapshot holds, if it can stand for the fold of the log up to its
    seq; None (logged) if it is missing, of another fold version, damaged or not this run's."""
    if record is None:
        return None
    why = ""
    if record.fold_version != FOLD_VERSION:
        why = f"fold version {record.fold_version}, this release folds with {FOLD_VERSION}"
    elif record.run_id != run_id or not 0 < record.seq <= last_seq:
        why = f"seq {record.seq} is not in the log (last seq {last_seq})"
    elif snapshot_checksum(run_id, record.seq, record.fold_version, record.data) != (
        record.checksum
    ):
        why = "its checksum does not match its bytes"
    else:
        try:
            state = decode_state(record.data)
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
            why = f"it does not decode ({exc})"
        else:
            if state.run_id == run_id and state.last_seq == record.seq:
                return state
            why = "it holds another run's or another seq's state"
    log.info("run %s: snapshot at seq %d ignored (%s): full fold", run_id, record.seq, why)
    return None


class Snapshots:
    """Takes a run's snapshots as its log grows (RunLog calls appended() and durable()).

    Taken when at least `every` events, and at least a quarter of the state's steps, were
    appended since the last one: encoding costs O(state), so the total stays linear in the log
    (a DAG with 100k instances is not re-encoded whole every 1000 events)."""

    def __init__(self, store: Store, state: RunState, every: int) -> None:
        self._store = store
        self._state = state
        self._every = every
        self._last = state.last_seq
        self._pending: SnapshotRecord | None = None  # encoded, its events not durable yet
        self._writing: asyncio.Task[None] | None = None
        self.written = 0

    def appended(self, seq: int, at: float) -> None:
        """Called after the event at `seq` was folded into the state."""
        if seq - self._last < max(self._every, len(self._state.steps) // 4):
            return
        if self._state.finished or self._state.updates:
            return  # a finished run is never resumed; one with updates is never snapshotted
        self._last = seq
        self._pending = make_snapshot(self._state, at)

    def durable(self, seq: int) -> None:
        """The events up to `seq` are committed: the pending snapshot may be stored."""
        pending = self._pending
        if pending is None or pending.seq > seq:
            return
        if self._writing is not None and not self._writing.done():
            return  # one write at a time; the next durable() retries with the newest
        self._pending = None
        self._writing = asyncio.ensure_future(self._put(pending))

    async def _put(self, record: SnapshotRecord) -> None:
        try:
            await self._store.put_snapshot(record)
            self.written += 1
        except Exception as exc:  # a cache: the run goes on, its next resume folds more
            log.warning("run %s: storing a snapshot failed: %s", record.run_id, exc)
