"""The events of a run's log: msgspec tagged-union Structs, encoded as msgpack maps.

Schema evolution rules (tests/golden holds histories every release must still read):
- a new field always has a default; a field's type never changes; a field is never renamed;
- an event type is never removed or renamed (the tag is the class name);
- values produced by user code (inputs, results, marker values) are nested msgpack (Raw), decoded
  only when needed and with the type the code declares.
"""

from __future__ import annotations

from typing import Union

import msgspec

from durable._errors import CorruptEventError, ErrorInfo
from storage import EventRecord


class Event(msgspec.Struct, tag=True, frozen=True, gc=False):
    """Base of every event.

    gc=False (inherited): the cyclic collector does not track events. They are immutable
    trees of plain values (decoded from the log or built from arguments), never part of a
    cycle, and a recovered run makes one per logged event: tracked, each collection walked
    them again for nothing."""


class Continuation(msgspec.Struct, frozen=True):
    """What a history started by ctx.continue_as_new() knows of the one it continues: its
    generation (the first history is 0), the seq of the RunContinued that closed the previous
    history, and where and when that previous history began (for the run's chain of histories,
    which outlives the events a continuation deletes)."""

    generation: int
    continued_from: int
    previous_start: int
    previous_started_at: float


class RunStarted(Event, frozen=True):
    workflow: str
    version: str
    input: msgspec.Raw
    parent_run_id: str | None = None
    fingerprint: str = ""
    # A cap on the steps running at once, for DAG runs (`durable run --parallelism N`).
    parallelism: int | None = None
    # When the whole run must be over (epoch seconds): past it, the run fails, timed out.
    deadline: float | None = None
    # A fork (`durable fork`): the run whose recorded results this one starts from, and
    # where it re-executes from (the copied prefix follows this event in the log).
    forked_from: str | None = None
    fork_point: str = ""
    # "dag" for a DAG run ("" for Python code, and DAG runs older than this field): tools
    # that act on a log without the application (`durable retry`) need to know.
    kind: str = ""
    # A DAG definition stored nowhere else (a file run by `durable run`): its canonical JSON
    # (DagDefinition.canonical_json, whose sha256 is `fingerprint`), for tools that draw or
    # read the run without the application (`durable visualize`). "" for every other run.
    definition: str = ""
    # Set on the first event of a history started by ctx.continue_as_new(): the fold of a
    # run's log starts afresh at it (durable._state.fold).
    continuation: Continuation | None = None


class StepStarted(Event, frozen=True):
    pos: int  # the step's position in the workflow's deterministic sequence of commands
    name: str
    attempt: int
    input: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack nil; Raw can't be Optional


class StepCompleted(Event, frozen=True):
    pos: int
    result: msgspec.Raw


class StepFailed(Event, frozen=True):
    pos: int
    attempt: int
    error: ErrorInfo
    retryable: bool
    next_attempt_at: float | None = None


class StepSkipped(Event, frozen=True):
    """A DAG step that will not run (its trigger rule or condition said so), and why."""

    pos: int
    name: str
    reason: str


class MarkerRecorded(Event, frozen=True):
    """A non-deterministic value the workflow asked for (now, random, uuid4), recorded once."""

    pos: int
    kind: str
    value: msgspec.Raw


class RunCompleted(Event, frozen=True):
    result: msgspec.Raw
    # "partial": a DAG run that finished with some steps failed (and some succeeded).
    status: str = "succeeded"
    error: ErrorInfo | None = None  # for "partial": which steps failed


class RunFailed(Event, frozen=True):
    error: ErrorInfo


class CancelRequested(Event, frozen=True):
    reason: str = ""
    inbox_id: int = 0  # the request as it arrived (0: not through the inbox)


class TimerStarted(Event, frozen=True):
    """ctx.sleep()/sleep_until() at `pos`: due at fire_at (epoch seconds), on every replay."""

    pos: int
    fire_at: float


class TimerFired(Event, frozen=True):
    pos: int


class SignalReceived(Event, frozen=True):
    """A signal taken from the run's inbox (the inbox row is deleted in the same commit)."""

    name: str
    payload: msgspec.Raw
    inbox_id: int = 0


class WaitStarted(Event, frozen=True):
    """ctx.wait_for_signal(signal) at `pos`, timing out at `deadline` (None: never)."""

    pos: int
    signal: str
    deadline: float | None = None


class WaitCompleted(Event, frozen=True):
    """The wait at `pos` got the signal recorded at seq `signal_seq` (0: it timed out)."""

    pos: int
    signal_seq: int = 0


class ChildStarted(Event, frozen=True):
    pos: int
    run_id: str
    workflow: str
    version: str
    # What the parent's end does to the child if it is still running: "cancel" or
    # "abandon" (see durable._children).
    parent_close: str = "cancel"
    # The position was taken at the ctx.start_child()/run_child() call (True), not when the
    # call's coroutine first ran (False: logs written before that fix; a run whose log holds
    # one keeps the old way, so its replays line up: see RunExecutor.start_child).
    at_call: bool = False
    # The child was asked to cancel in this commit: its creation was in flight when the run's
    # CancelRequested was recorded, which could not ask it (see durable._children).
    cancel_asked: bool = False


class ChildCompleted(Event, frozen=True):
    """A child run's end, as its parent learned it (from its inbox)."""

    run_id: str
    status: str
    result: msgspec.Raw = msgspec.Raw(b"\xc0")
    error: ErrorInfo | None = None
    inbox_id: int = 0


class CommandCancelled(Event, frozen=True):
    """The run's cancellation ended the timer, signal wait or child wait at `pos`."""

    pos: int


class SelectStarted(Event, frozen=True):
    """ctx.wait() (or one turn of ctx.as_completed()) at `pos`, racing `count` awaitables (in
    the order the code gave them) until `return_when` ("FIRST_COMPLETED", "FIRST_EXCEPTION",
    "ALL_COMPLETED"), timing out at `deadline` (epoch seconds; None: never)."""

    pos: int
    count: int
    return_when: str = "FIRST_COMPLETED"
    deadline: float | None = None


class SelectCompleted(Event, frozen=True):
    """The select at `pos` returned: `done` are the indices of the awaitables that had
    completed, in the order they completed (the others were pending); `timed_out` if its
    deadline ended it. A replay returns exactly this, whatever completes first then."""

    pos: int
    done: list[int] = []
    timed_out: bool = False


class InboxDropped(Event, frozen=True):
    """`durable retry`, before its RunResumed: inbox items that arrived for the ended run and
    that the resumed one must not act on (a cancel request, the end of a child the retry
    resumes too), taken out of the inbox unread in the same commit."""

    inbox_ids: list[int] = []


class CodeChanged(Event, frozen=True):
    """The run was resumed by workflow code whose fingerprint differs from the last recorded."""

    fingerprint: str


class RunCancelled(Event, frozen=True):
    reason: str = ""


class RunContinued(Event, frozen=True):
    """ctx.continue_as_new(): the last event of a history. The run goes on, under the same run
    id and version, with a new history whose RunStarted follows (generation `generation`, with
    `input`); signals received and not yet consumed are carried into it."""

    generation: int
    input: msgspec.Raw


class RunResumed(Event, frozen=True):
    """`durable retry`: a failed (or cancelled) run continues in place. The steps at `retry`
    get a new attempt (with a fresh retry budget), the instances at `forget` are as if never
    recorded (a DAG's skipped dependents and notification deliveries, decided again), the
    child runs in `children` are retried too and their ends awaited again. `deadline`
    replaces the run's."""

    retry: list[int] = []
    forget: list[int] = []
    children: list[str] = []
    deadline: float | None = None
    # The timer, signal and child waits at these positions that the run's cancellation (or
    # deadline) ended are waited for again. A cancelled run's cancellation is over: it is
    # not delivered again.
    reopen: list[int] = []


class ExternalStarted(Event, frozen=True):
    """ctx.wait_external() at `pos`: its name, the nonce of its completion token (recorded, so
    that a replay hands out the same token) and its deadline (None: never)."""

    pos: int
    name: str
    nonce: str
    deadline: float | None = None


class ExternalCompleted(Event, frozen=True):
    """The external wait at `pos` ended as settled in durable_completions: "completed" (with
    `result`), "failed" (with `error`) or "timed_out"; `inbox_id`: the item that brought it."""

    pos: int
    status: str
    result: msgspec.Raw = msgspec.Raw(b"\xc0")
    error: ErrorInfo | None = None
    inbox_id: int = 0


class ValueSet(Event, frozen=True):
    """ctx.set_event(key, value) at `pos`: the run's latest value of `key` (get_event reads it
    from the values table, written in the same commit)."""

    pos: int
    key: str
    value: msgspec.Raw


class StreamWritten(Event, frozen=True):
    """Workflow code's ctx.write_stream(key, value), at a position; its row in durable_streams
    (producer w<pos>) is written in the same commit."""

    pos: int
    key: str
    value: msgspec.Raw


class StreamClosed(Event, frozen=True):
    """Workflow code's ctx.close_stream(key), at a position (producer w<pos>)."""

    pos: int
    key: str


class UpdateAccepted(Event, frozen=True):
    """An update sent to the run (app.update) was accepted at position `pos`: its handler runs
    from there (a replay relaunches it in this event's turn). `inbox_id`: the item it took."""

    pos: int
    update_id: str
    name: str
    args: msgspec.Raw
    inbox_id: int = 0


class UpdateCompleted(Event, frozen=True):
    """The handler of update `update_id` returned `result`, or raised `error`."""

    update_id: str
    result: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack nil
    error: ErrorInfo | None = None


AnyEvent = Union[  # noqa: UP007  (msgspec needs the Union object for its decoder)
    RunStarted,
    StepStarted,
    StepCompleted,
    StepFailed,
    StepSkipped,
    MarkerRecorded,
    RunCompleted,
    RunFailed,
    CancelRequested,
    RunCancelled,
    TimerStarted,
    TimerFired,
    SignalReceived,
    WaitStarted,
    WaitCompleted,
    ChildStarted,
    ChildCompleted,
    CommandCancelled,
    CodeChanged,
    RunResumed,
    SelectStarted,
    SelectCompleted,
    InboxDropped,
    RunContinued,
    ExternalStarted,
    ExternalCompleted,
    ValueSet,
    StreamWritten,
    StreamClosed,
    UpdateAccepted,
    UpdateCompleted,
]
TERMINAL_EVENTS = (RunCompleted, RunFailed, RunCancelled)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)


def event_type(event: Event) -> str:
    return type(event).__name__


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(record: EventRecord) -> AnyEvent:
    try:
        event: AnyEvent = _decoder.decode(record.data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CorruptEventError(record.run_id, record.seq, str(exc)) from None
    if type(event).__name__ != record.type:
        raise CorruptEventError(
            record.run_id,
            record.seq,
            f"stored type {record.type!r} does not match payload {type(event).__name__!r}",
        )
    return event


class LoggedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as read back from the log, with its position and time (untracked by the
    cyclic collector, as Event)."""

    run_id: str
    seq: int
    at: float
    event: AnyEvent

    @property
    def type(self) -> str:
        return type(self.event).__name__


def decode_record(record: EventRecord) -> LoggedEvent:
    return LoggedEvent(record.run_id, record.seq, record.created_at, decode_event(record))
