"""Streams: values a run publishes under a key while it runs (ctx.write_stream, and
durable.write_stream from step bodies), read live by app.read_stream().

Two producers, one table (durable_streams):

- Workflow code: each write or close is a command at a position, logged (StreamWritten,
  StreamClosed) and projected into the table in the same commit (producer w<pos>). A replay
  finds it recorded and writes nothing.
- Step bodies: not logged (a token stream would swamp the log and every replay). An attempt's
  i-th write to a key is producer s<pos>.<i>, i restarting at 0 on every attempt; the store drops a
  row whose producer it holds. So a retried attempt (after a failure or a crash) that emits the
  same values adds nothing until it passes what the earlier attempt wrote: each offset holds one
  value, once. A step whose values differ between attempts keeps the first attempt's prefix;
  it can ask current_step().stream_resume(key) how many it already wrote and go on from there
  (its next write to the key is then numbered after them).

A run's StreamWriter sends step rows to the store in batches (every STREAM_FLUSH_DELAY at the
latest), fenced by the run's lease like its appends; the step's outcome is appended only once
its rows are durable, and no row is sent before the attempt's StepStarted is (so a recovery
that finds rows of a step also finds the step started, and reads its progress).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import weakref
from typing import Any, Protocol, cast

import msgspec

from durable._codec import encode_value
from durable._events import StreamClosed, StreamWritten
from durable._limits import MAX_STREAM_VALUE_BYTES
from durable._runlog import RunLog
from durable._state import RunState
from durable.runtime._context import _current_step, current_executor, step_streams
from durable.runtime._stops import EndOfHistory, ExecutionStopped
from storage import StreamClosedError, StreamRow

# Step rows wait at most this long for company before they are sent.
STREAM_FLUSH_DELAY = 0.002
# Keys are stored as VARCHAR(255); producers are short.
MAX_KEY_LENGTH = 255


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ValueError(
            f"stream key {key!r}: must be a non-empty string of at most {MAX_KEY_LENGTH} "
            "characters, without NUL"
        )
    return key


def encode_stream_value(key: str, value: Any) -> bytes:
    what = f"a value written to stream {key!r}"
    data = encode_value(value, what)
    if len(data) > MAX_STREAM_VALUE_BYTES:
        raise ValueError(
            f"{what} is {len(data):,} bytes encoded, over the limit of "
            f"{MAX_STREAM_VALUE_BYTES:,} (durable._limits.MAX_STREAM_VALUE_BYTES): split it "
            "into several values, or store it elsewhere and stream a reference"
        )
    return data


# ----------------------------------------------------------------------- workflow code


class StreamHost(Protocol):
    """The executor as these commands see it (RunExecutor)."""

    state: RunState
    log: RunLog | None
    stopping: bool
    _ending: bool
    _next_pos: int

    def recorded_at(self, pos: int) -> str | None: ...

    def _divergence(self, pos: int, recorded: str, requested: str, depth: int = 3) -> Any: ...


def stream_command(ex: StreamHost, key: str, value: Any, *, close: bool) -> None:
    """ctx.write_stream / ctx.close_stream: a command at the next position."""
    check_key(key)
    if ex.stopping or ex._ending:
        raise ExecutionStopped()
    label = f"ctx.close_stream({key!r})" if close else f"ctx.write_stream({key!r})"
    pos = ex._next_pos
    ex._next_pos = pos + 1
    recorded = ex.state.commands.get(pos)
    if recorded is not None:
        if recorded != label:
            raise ex._divergence(pos, recorded, label, depth=4)
        return
    other = ex.recorded_at(pos)
    if other is not None:
        raise ex._divergence(pos, other, label, depth=4)
    if ex.log is None:
        raise EndOfHistory()
    try:
        # Live: the state is this point's, so a key closed by workflow code is known here.
        if key in ex.state.streams_closed:
            raise StreamClosedError(ex.state.run_id, key)
        data = None if close else encode_stream_value(key, value)
    except BaseException:
        ex._next_pos = pos  # nothing recorded: the position stays free
        raise
    now = time.time()
    row = StreamRow(key, f"w{producer_at(ex.state, pos)}", data, now, close)
    event: StreamWritten | StreamClosed
    if close:
        event = StreamClosed(pos=pos, key=key)
    else:
        assert data is not None
        event = StreamWritten(pos=pos, key=key, value=msgspec.Raw(data))
    ex.log.append(event, at=now, stream=(row,))


# ------------------------------------------------------------------------- step bodies


class StreamWriter:
    """A run's step rows on their way to the store, in the order they were written."""

    def __init__(self, log: RunLog) -> None:
        self._log = log
        self.state = log.state
        self._rows: list[StreamRow] = []
        self._tail: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Batches refused for writing to a closed stream, and the last such refusal: a step
        # attempt fails if one of the batches sent since it started was (see StepStreams).
        self.refusals = 0
        self.refused: StreamClosedError | None = None

    def add(self, row: StreamRow) -> None:
        self._rows.append(row)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(STREAM_FLUSH_DELAY, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._rows:
            return
        rows, self._rows = tuple(self._rows), []
        self._tail = asyncio.ensure_future(self._send(self._tail, rows))
        self._tail.add_done_callback(_retrieved)

    async def _send(
        self, previous: asyncio.Future[None] | None, rows: tuple[StreamRow, ...]
    ) -> None:
        if previous is not None:
            # One batch after the other (offsets in order), whatever became of the previous.
            await asyncio.wait([previous])
        log = self._log
        started = log.all_durable()  # the attempt's StepStarted first (see the module doc)
        if started is not None:
            await started
        assert log.fence is not None
        try:
            await log._store.write_stream(log.state.run_id, log.fence, rows)
        except StreamClosedError as exc:
            self.refusals += 1
            self.refused = exc
            return
        except Exception as exc:  # the lease is lost, the database is gone: stop the run
            log.abort(exc)
            raise
        log._on_durable(log.state.run_id)  # wakes this process's readers of the run

    async def flushed(self) -> None:
        """Return once every row added so far is stored (or refused, as counted in
        `refusals`); raise what stopped the run's writes (a lost lease)."""
        self._flush()
        tail = self._tail
        if tail is not None:
            await asyncio.shield(tail)


def _retrieved(fut: asyncio.Future[None]) -> None:
    # Its failure was reported to the run (RunLog.abort): nothing else to say.
    if not fut.cancelled():
        fut.exception()


_writers: weakref.WeakKeyDictionary[RunLog, StreamWriter] = weakref.WeakKeyDictionary()


def producer_at(state: RunState, pos: int) -> str:
    """A position as producer ids name it: `pos` in a run's first history, `pos@generation`
    in a later one (ctx.continue_as_new() restarts positions, and a new history's writes must
    not be taken for the old one's and dropped)."""
    return str(pos) if not state.generation else f"{pos}@{state.generation}"


def writer_of(log: RunLog) -> StreamWriter:
    found = _writers.get(log)
    if found is None:
        found = _writers[log] = StreamWriter(log)
    return found


class StepStreams:
    """One attempt of one step call: numbers its writes (producers s<pos>.<i>) and hands them to
    the run's writer, from the loop's thread or from a sync body's worker thread."""

    def __init__(self, writer: StreamWriter, pos: int, loop: asyncio.AbstractEventLoop) -> None:
        self._writer = writer
        self._pos = producer_at(writer.state, pos)
        self._loop = loop
        self._thread = threading.get_ident()
        self._next: dict[str, int] = {}  # per key: the number of the attempt's next write
        self.used = False
        self._refusals = writer.refusals
        self._lock = threading.Lock()
        self.closed: set[str] = set()

    async def flushed(self) -> None:
        """This attempt's rows are durable; a lost lease stops the execution."""
        writer = self._writer
        try:
            await writer.flushed()
        except Exception as exc:  # already reported to the run (RunLog.abort)
            raise ExecutionStopped() from exc
        if writer.refusals > self._refusals and writer.refused is not None:
            raise writer.refused

    def resume(self, key: str, count: int) -> None:
        with self._lock:
            self._next[key] = max(self._next.get(key, 0), count)

    def write(self, key: str, value: Any, *, close: bool) -> None:
        check_key(key)
        if key in self.closed:
            raise StreamClosedError(current_run_id(), key)
        data = None if close else encode_stream_value(key, value)
        with self._lock:  # a body's own threads may write concurrently
            self.used = True
            number = self._next.get(key, 0)
            self._next[key] = number + 1
            producer = f"s{self._pos}.{number}"
            if close:
                self.closed.add(key)
            row = StreamRow(key, producer, data, time.time(), close)
            if threading.get_ident() == self._thread:
                self._writer.add(row)
            else:
                # call_soon_threadsafe keeps the order of the calls: the rows stay in order,
                # and all are added before the body's result reaches the loop.
                self._loop.call_soon_threadsafe(self._writer.add, row)


# Set while a step body runs (in its task, or copied into its worker thread), next to
# current_step(); typed there as the StreamSink that stream_resume() talks to.
current_streams = cast("contextvars.ContextVar[StepStreams | None]", step_streams)


def current_run_id() -> str:
    step = _current_step.get()
    return step.run_id if step is not None else "?"


async def step_progress(log: RunLog, pos: int) -> dict[str, int]:
    """Values each key holds from earlier attempts of the step at `pos` (their rows flushed
    first): what current_step().stream_resume(key) answers."""
    writer = _writers.get(log)
    if writer is not None:
        try:
            await writer.flushed()
        except Exception as exc:  # already reported to the run (RunLog.abort)
            raise ExecutionStopped() from exc
    return await log._store.stream_progress(log.state.run_id, f"s{producer_at(log.state, pos)}.")


# ----------------------------------------------------------------------- the public calls


def write_stream(key: str, value: Any) -> None:
    """Append `value` to the run's stream `key` (readers get it live: app.read_stream).

    In workflow code (same as ctx.write_stream): recorded at a position, written once. In a
    step body: written at once, exactly once across the step's retries if the attempts write
    the same values in the same order (see current_step().stream_resume)."""
    _write(key, value, close=False)


def close_stream(key: str) -> None:
    """Mark the run's stream `key` complete: readers end there, and writing to it again raises
    StreamClosedError."""
    _write(key, None, close=True)


def _write(key: str, value: Any, *, close: bool) -> None:
    ex = current_executor.get()
    if ex is not None:
        ex.write_stream(key, value, close=close)
        return
    streams = current_streams.get()
    if streams is None:
        name = "close_stream" if close else "write_stream"
        raise RuntimeError(
            f"durable.{name}() is only available in workflow code or a step body run by a workflow"
        )
    streams.write(key, value, close=close)
