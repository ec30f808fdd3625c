"""The workflow context: what workflow code may use besides steps, all of it deterministic.

The bottom of the runtime: it imports nothing else of it. The commands workflow code issues
go to the run's executor through the WorkflowRuntime protocol below, which RunExecutor
implements (as Temporal's `workflow` module talks to its `_Runtime`), so the executor can build
the Context without the Context knowing the executor's module.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import random as _random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import Any, NoReturn, Protocol, TypeVar

import msgspec

from durable._children import ParentClose, check_parent_close
from durable._codec import decode_value
from durable._durations import check_duration
from durable._state import RunState, WaitState
from durable.runtime._external import MAX_NAME_CHARS, ExternalWait

T = TypeVar("T")


class ContinueAsNew(BaseException):
    """Raised by ctx.continue_as_new(): the workflow's current history ends here and the run
    goes on with a new one. A BaseException, so `except Exception` in workflow code cannot
    swallow it."""

    def __init__(self, input: msgspec.Raw) -> None:
        super().__init__("continue as new")
        self.input = input


class WorkflowRuntime(Protocol):
    """What a run's executor does for its workflow code: each command takes the next position
    of the run's log and returns the recorded outcome, or runs live and records it."""

    @property
    def state(self) -> RunState: ...

    @property
    def is_replaying(self) -> bool: ...

    @property
    def positions_used(self) -> int:
        """The next command's position: those below it are taken."""
        ...

    def call_step(
        self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        """`step` is a StepDef (the registry imports this module, not the other way)."""
        ...

    def marker(self, kind: str, produce: Callable[[], Any]) -> Any: ...

    def continue_as_new(self, input: Any) -> NoReturn: ...

    def sleep_until(self, when: float) -> Coroutine[Any, Any, None]: ...

    def wait_for_signal(
        self, name: str, timeout: float | None, decode: Callable[[msgspec.Raw], Any]
    ) -> Coroutine[Any, Any, Any]: ...

    def start_child(
        self,
        workflow: Any,
        input: Any,
        run_id: str | None,
        version: str | None,
        label: str,
        parent_close: ParentClose = "cancel",
        timeout: float | None = None,
        *,
        wait: bool = False,
    ) -> Coroutine[Any, Any, Any]:
        """Takes the child's position at the call; the coroutine gives a ChildRun, or with
        `wait` the child's result."""
        ...

    def child_result(self, rec: WaitState) -> Coroutine[Any, Any, Any]: ...

    def wait_external(
        self, name: str, timeout: float | None, decode: Callable[[msgspec.Raw], Any]
    ) -> ExternalWait: ...
    def on_update(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        validator: Callable[..., object] | None,
    ) -> None: ...

    def patched(self, change_id: str, *, deprecated: bool = False) -> bool: ...

    def write_stream(self, key: str, value: Any, *, close: bool = False) -> None: ...

    def select(
        self, aws: Iterable[Awaitable[T]], return_when: str, timeout: float | None
    ) -> Coroutine[Any, Any, tuple[set[asyncio.Future[T]], set[asyncio.Future[T]]]]: ...

    def as_completed(
        self, aws: Iterable[Awaitable[T]], timeout: float | None
    ) -> InCompletionOrder[T]: ...

    def set_event(self, key: str, value: Any) -> None: ...

    def on_query(self, name: str, fn: Callable[..., Any]) -> None: ...


class InCompletionOrder(Protocol[T]):
    """What ctx.as_completed() returns: `for aw in it: await aw` (coroutines, in the recorded
    order of completion) or `async for fut in it` (the futures themselves, done)."""

    def __iter__(self) -> Iterator[Coroutine[Any, Any, T]]: ...

    def __aiter__(self) -> AsyncIterator[asyncio.Future[T]]: ...


# Set inside a workflow's task (and only there): step calls look it up to know they are being
# recorded. Step bodies run with it cleared, so a step calling a step is a plain call.
current_executor: contextvars.ContextVar[WorkflowRuntime | None] = contextvars.ContextVar(
    "durable_current_executor", default=None
)


class StepContext(msgspec.Struct, frozen=True):
    """What a step body may know about the call it serves (see current_step())."""

    run_id: str
    position: int
    name: str
    attempt: int
    # Stream values earlier attempts of this call wrote, by key (see stream_resume).
    streams_written: dict[str, int] = msgspec.field(default_factory=dict)

    def stream_resume(self, key: str) -> int:
        """How many values earlier attempts of this step call wrote to stream `key`, and from
        now on this attempt continues after them: its next write to `key` is the one after.

        Without it, an attempt's writes are numbered from the first again, and those already
        stored are dropped: exactly once for a step that writes the same values each time.
        A step whose values would differ on a retry (a real model) calls this before writing
        and produces only the rest (e.g. resumes the model with the text so far)."""
        count = self.streams_written.get(key, 0)
        sink = step_streams.get()
        if sink is not None:
            sink.resume(key, count)
        return count

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts, crashes and replays of this one step call: pass it to an
        external system so a step that runs twice has its effect once."""
        return f"{self.run_id}:{self.position}"


class StreamSink(Protocol):
    def resume(self, key: str, count: int) -> None:
        """Number the attempt's next write to `key` after `count` stored values."""
        ...


# The step attempt's stream writer (runtime._streams.StepStreams), set next to current_step.
step_streams: contextvars.ContextVar[StreamSink | None] = contextvars.ContextVar(
    "durable_step_streams", default=None
)

# Set while a step body runs (in its task, or copied into its worker thread).
_current_step: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "durable_current_step", default=None
)


def current_step() -> StepContext:
    """The step call being executed, from inside a step body (async or sync)."""
    step = _current_step.get()
    if step is None:
        raise RuntimeError("current_step() is only available inside a step body run by a workflow")
    return step


class Context:
    """Passed as the first argument of every workflow.

    ctx.now(), ctx.random() and ctx.uuid4() are recorded in the log the first time and return
    the recorded value on every replay, so code branching on them stays deterministic.
    """

    def __init__(self, executor: WorkflowRuntime) -> None:
        self._executor = executor

    @property
    def run_id(self) -> str:
        return self._executor.state.run_id

    @property
    def workflow(self) -> str:
        return self._executor.state.workflow

    @property
    def version(self) -> str:
        return self._executor.state.version

    @property
    def is_replaying(self) -> bool:
        """True while the code re-executes positions the log already holds."""
        return self._executor.is_replaying

    def now(self) -> dt.datetime:
        ts: float = self._executor.marker("now", _wall_clock)
        return dt.datetime.fromtimestamp(ts, dt.UTC)

    def random(self) -> float:
        value: float = self._executor.marker("random", _random.random)
        return value

    def uuid4(self) -> uuid.UUID:
        value: str = self._executor.marker("uuid4", lambda: uuid.uuid4().hex)
        return uuid.UUID(hex=value)

    def continue_as_new(self, input: Any = None) -> NoReturn:
        """End this history of the run and go on with a new one, under the same run id: the
        workflow starts again from the top with `input`, on the version the run started on (a
        run is pinned to its version, continued or not). Signals received and not yet
        consumed are carried over, and so is what is still in the run's inbox; the log keeps
        only the current history and the one before it (WorkerOptions.keep_histories), so a
        workflow that loops forever this way keeps a bounded log. Children still running are
        treated as at the run's end (cancelled unless abandoned). Workflow code only."""
        if _current_step.get() is not None:
            raise RuntimeError(
                "ctx.continue_as_new() is workflow code and was called inside a step body; "
                "return from the step and call it in the workflow"
            )
        self._executor.continue_as_new(input)

    # -- talking to the outside ---------------------------------------------------------------

    def set_event(self, key: str, value: Any) -> None:
        """Publish `value` (msgpack-encodable) as the run's latest value of `key`: recorded in
        the log, readable from any process with app.get_event(run_id, key) (which waits for
        it), `durable runs event` or GET /executions/{id}/values/{key}. Takes a position like
        a step call; a replay finds it recorded and writes nothing again."""
        _refuse_in_step("ctx.set_event()")
        self._executor.set_event(key, value)

    def on_query(self, name: str, fn: Callable[..., Any]) -> None:
        """Register a read-only handler: app.query(run_id, name, *args) replays the run in the
        caller's process, then calls fn(*args) and returns its result. The handler reads the
        workflow's variables; it may not run steps, sleep, wait, set events or start children
        (QueryError). Takes no position; registering again replaces the handler."""
        _refuse_in_step("ctx.on_query()")
        self._executor.on_query(name, fn)

    # -- durable waits -----------------------------------------------------------------------

    def sleep(self, seconds: float) -> Awaitable[None]:
        """A durable timer: the run survives restarts while it sleeps, holds no memory in a
        worker meanwhile, and wakes when the time has come (never before)."""
        seconds = check_duration("ctx.sleep() seconds", seconds)
        return self._executor.sleep_until(time.time() + seconds)

    def sleep_until(self, when: dt.datetime) -> Awaitable[None]:
        """Like sleep(), until `when` (an aware datetime; naive ones are refused)."""
        if when.tzinfo is None:
            raise ValueError("ctx.sleep_until() needs an aware datetime (e.g. with tzinfo=UTC)")
        return self._executor.sleep_until(when.timestamp())

    def wait_for_signal(
        self, name: str, *, timeout: float | None = None, type: Any = Any
    ) -> Awaitable[Any]:
        """The payload of the next signal `name` sent to this run (app.signal(), `durable
        signal`), in the order they were sent, each given to one wait only. A signal sent
        before the wait is kept for it. TimeoutError after `timeout` seconds without one."""
        if timeout is not None:
            timeout = check_duration("wait_for_signal() timeout", timeout)
        return self._executor.wait_for_signal(name, timeout, functools.partial(_decode_as, type))

    def wait_external(
        self, *, timeout: float | None = None, name: str = "", type: Any = Any
    ) -> ExternalWait:
        """Wait for an outside system (a payment provider's webhook, a human's tool) to
        complete this wait: hand `.token` to it from a step, then `await` the wait for the
        result it gives (app.complete(token, result), `durable complete`, POST /completions),
        decoded as `type`. app.fail(token, error) makes the await raise ExternalFailed;
        `timeout` seconds without either make it raise TimeoutError. Exactly one of them
        counts, from any process. The token is recorded: a replay hands out the same one."""
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or "\x00" in name:
            raise ValueError(
                f"ctx.wait_external() name must be a string of at most {MAX_NAME_CHARS} "
                f"characters without NUL, not {name!r:.80}"
            )
        if timeout is not None:
            timeout = check_duration("wait_external() timeout", timeout)
        return self._executor.wait_external(name, timeout, functools.partial(_decode_as, type))

    def start_child(
        self,
        workflow: Any,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        parent_close: ParentClose = "cancel",
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, ChildRun]:
        """Start a child run (recorded: a replay does not start it again) and return at once;
        `await child.result()` waits for it.

        Like every command, the child takes its position in the run's log at the call
        (`asyncio.gather(ctx.run_child(a), ctx.wait_for_signal("s"))` gives the child the
        first position, whenever its task runs), and the arguments are checked there.

        `parent_close`: what this run's end does to the child if it is still running then.
        "cancel" (the default): the child is cancelled when this run ends, however it ends
        (succeeded, failed, timed out or cancelled), and its own children with it.
        "abandon": the child outlives this run; not even cancelling this run reaches it.
        `timeout`: seconds the child run may take (its deadline, as app.start(timeout=)):
        past them it fails, timed out, and result() raises ChildRunFailed."""
        return self._start_child(workflow, input, run_id, version, parent_close, timeout, False)

    def run_child(
        self,
        workflow: Any,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        parent_close: ParentClose = "cancel",
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Start a child run and wait for its result; its failure (a timeout included) raises
        ChildRunFailed. Its position is taken at the call. `parent_close` and `timeout`: see
        start_child()."""
        return self._start_child(workflow, input, run_id, version, parent_close, timeout, True)

    def _start_child(
        self,
        workflow: Any,
        input: Any,
        run_id: str | None,
        version: str | None,
        parent_close: ParentClose,
        timeout: float | None,
        wait: bool,
    ) -> Coroutine[Any, Any, Any]:
        parent_close = check_parent_close(parent_close)
        if timeout is not None:
            timeout = check_duration("child run timeout", timeout, positive=True)
        label = workflow if isinstance(workflow, str) else getattr(workflow, "__name__", "?")
        return self._executor.start_child(
            workflow, input, run_id, version, str(label), parent_close, timeout, wait=wait
        )

    # -- deterministic races (see _select) ----------------------------------------------------

    def wait(
        self,
        aws: Iterable[Awaitable[T]],
        *,
        return_when: str = asyncio.FIRST_COMPLETED,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, tuple[set[asyncio.Future[T]], set[asyncio.Future[T]]]]:
        """asyncio.wait() for workflows: `(done, pending)` once `return_when` is met
        (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED) or `timeout` seconds have passed,
        with which awaitables were done, and in what order, recorded: a replay or a recovery
        gets exactly that outcome, whatever completes first then. Steps, ctx.sleep(),
        ctx.wait_for_signal(), child runs (ChildRun.result(), ctx.run_child()) and any other
        awaitable can be raced. Futures and tasks come back as themselves; any other awaitable
        (a coroutine) is wrapped in a task, and that task is what `done`/`pending` hold (so
        wrap them yourself, asyncio.ensure_future, to recognize them). Iterating the sets (and
        pop()) gives `done` in completion order and `pending` in the order given. The timeout
        is durable: its deadline is recorded, like ctx.sleep(). Pending awaitables are not
        cancelled: cancel them, or await them later."""
        return self._executor.select(aws, return_when, timeout)

    def as_completed(
        self, aws: Iterable[Awaitable[T]], *, timeout: float | None = None
    ) -> InCompletionOrder[T]:
        """asyncio.as_completed() for workflows, with the order of completion recorded:
        `for aw in ctx.as_completed(aws): result = await aw`, or `async for fut in
        ctx.as_completed(aws): fut.result()` (the futures, done: tasks for coroutines).
        After the durable `timeout`, the next one raises TimeoutError."""
        return self._executor.as_completed(aws, timeout)

    def on_update(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        *,
        validator: Callable[..., object] | None = None,
    ) -> None:
        """Answer updates named `name` (app.update(run_id, name, *args)): `await fn(*args)`
        runs inside the workflow, beside its code, and may call steps, sleep and wait; what
        it returns (or raises) is the caller's answer, recorded in the log. `validator(*args)`
        (a plain function) runs first and rejects the update by raising: nothing is recorded
        then. Register handlers before the workflow first waits: an update for a name with
        no handler when the run goes idle is rejected."""
        self._executor.on_update(name, fn, validator)

    def patched(self, change_id: str) -> bool:
        """Change a running workflow's code safely. Runs that reached this point before the
        change take the old path (False); the others take the new one (True), recorded.

            if ctx.patched("send-sms"):
                await send_sms(order)       # new code
            else:
                await send_email(order)     # what older runs did here

        Once no run started before the change is unfinished (`durable runs list`), replace
        the call by ctx.deprecate_patch("send-sms") and drop the old branch; later, once no
        run that recorded the patch is unfinished either, remove that call too."""
        return self._executor.patched(change_id)

    # -- streams (see runtime._streams) ----------------------------------------------------

    def write_stream(self, key: str, value: Any) -> None:
        """Append `value` to this run's stream `key`, recorded at a position (a replay writes
        nothing again); readers (app.read_stream, GET /executions/{id}/streams/{key}) get it
        live. StreamClosedError if workflow code already closed the key."""
        self._executor.write_stream(key, value)

    def close_stream(self, key: str) -> None:
        """Mark the stream `key` complete: readers end after its last value."""
        self._executor.write_stream(key, None, close=True)

    def deprecate_patch(self, change_id: str) -> None:
        """The second step of removing a patch (see patched()): takes the recorded marker of
        runs that have one, records nothing for new runs."""
        self._executor.patched(change_id, deprecated=True)

    def __repr__(self) -> str:
        return f"<Context run_id={self.run_id!r} workflow={self.workflow!r}@{self.version!r}>"


def _refuse_in_step(what: str) -> None:
    step = _current_step.get()
    if step is not None:
        raise RuntimeError(
            f"{what} is workflow code, and was called inside the body of step {step.name!r}: "
            "return the value from the step and call it in the workflow"
        )


def _wall_clock() -> Any:
    return dt.datetime.now(dt.UTC).timestamp()


class ChildRun:
    """A child run started by ctx.start_child()."""

    def __init__(self, executor: WorkflowRuntime, rec: WaitState) -> None:
        self._executor = executor
        self._rec = rec

    @property
    def run_id(self) -> str:
        return self._rec.child_run_id

    def result(self) -> Awaitable[Any]:
        """The child's result once it ends; ChildRunFailed if it failed or was cancelled."""
        return self._executor.child_result(self._rec)

    def __repr__(self) -> str:
        return f"<ChildRun {self.run_id!r}>"


def _decode_as(type_: Any, raw: msgspec.Raw) -> Any:
    return decode_value(raw, type_)
