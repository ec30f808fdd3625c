"""Executing one run: the workflow coroutine re-executed against its log.

Every command the workflow issues (a step call, ctx.now()...) takes the next position. If the log
holds that position, the recorded outcome is returned without running anything; if not, the
command runs live and its outcome is appended. The same code serves live execution, recovery
after a crash (the log is simply longer) and the replay debugger (nothing may run live).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import Executor
from typing import Any, NoReturn, TypeVar

import msgspec

from durable._children import cancel_requests
from durable._codec import decode_value, encode_value, error_info
from durable._errors import ErrorInfo, NonDeterminismError, StepFailed
from durable._events import (
    CancelRequested,
    CodeChanged,
    ExternalStarted,
    RunCancelled,
    RunCompleted,
    RunFailed,
    SelectStarted,
    TimerStarted,
    WaitStarted,
)
from durable._runlog import RunLog, append_end
from durable._state import CANCELLED, RunState, WaitState
from durable.runtime._child_commands import ChildCommands
from durable.runtime._child_starts import ChildStarter, ChildStarts
from durable.runtime._context import Context, ContinueAsNew, current_executor
from durable.runtime._continue import record_continuation
from durable.runtime._external import ExternalWait, encode_token, new_nonce
from durable.runtime._guard import guard_command
from durable.runtime._markers import marker, patched
from durable.runtime._order import ReplayOrder, done_key
from durable.runtime._registry import Registry, StepDef, WorkflowDef, caller_location
from durable.runtime._select import AsCompleted, refuse_raw_race, select_wait
from durable.runtime._step_runner import run_step
from durable.runtime._stops import EndOfHistory, ExecutionStopped
from durable.runtime._streams import stream_command
from durable.runtime._updates import Updates
from durable.runtime._values import on_query, set_event
from durable.runtime._waits import Waits
from durable.runtime._watch import RunWatch
from storage import InboxItem, NewCompletion


async def _raise(exc: BaseException) -> Any:
    raise exc


T = TypeVar("T")


class RunExecutor(ChildCommands):
    def __init__(
        self,
        state: RunState,
        workflow: WorkflowDef,
        log: RunLog | None,
        *,
        step_pool: Executor | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.state = state
        self.registry = registry  # to name the child workflows the code starts
        self.workflow = workflow
        self.log = log  # None: replay only, nothing may run or be written
        self.step_pool = step_pool
        self._next_pos = 0
        self._max_recorded = max(
            [*state.steps, *state.markers, *state.waits, *state.commands], default=-1
        )
        self.waits = Waits(self)
        self.inflight = 0  # live steps running
        self.children = ChildStarts(self)  # the children being created (see _child_starts)
        # Replays hand recorded outcomes back in the order they were recorded (see _order).
        self.order = ReplayOrder(state, busy=self.busy)
        # The run's cancellation is being delivered: the steps and waits it ends are recorded
        # as cancelled. `stopping`: the worker stopped executing it; nothing more is recorded.
        self.cancelling = False
        self.stopping = False
        self.timed_out = False
        self.on_idle: Callable[[RunExecutor], None] | None = None  # set by the worker
        self.start_child_run: ChildStarter | None = None  # set by the worker
        self._patches: dict[str, bool] = {}
        self._ending = False  # the workflow returned or raised: its end is being recorded
        self.progress = 0  # bumped whenever a durable awaitable ends or is resolved
        self.races: dict[int, list[asyncio.Future[Any]]] = {}  # see _select.SelectHost
        self.watch = RunWatch(self)  # delivers the cancel, tells the worker the run is idle
        self._deadline: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fatal: NonDeterminismError | None = None
        self.reached_end_of_history = False
        self.returned: tuple[bool, Any] | None = None  # replay: (ok, value or exception)
        self.continued: RunState | None = None  # ctx.continue_as_new(): the next history
        self.queries: dict[str, Callable[..., Any]] = {}  # ctx.on_query (see _values)
        self.context: contextvars.Context | None = None  # the workflow task's (queries)
        self.updates = Updates(self)  # ctx.on_update handlers and what they answer
        self.order.positions_used = lambda: self._next_pos

    def busy(self) -> bool:
        """Live work runs (steps, child creations): what it leads to may change the run."""
        return self.inflight > 0 or self.children.in_flight > 0

    @property
    def is_replaying(self) -> bool:
        return self._next_pos <= self._max_recorded

    @property
    def positions_used(self) -> int:
        return self._next_pos

    @property
    def workflow_task(self) -> asyncio.Task[None] | None:
        return self._task

    @property
    def ending(self) -> bool:
        """The workflow returned or raised: its end is being recorded."""
        return self._ending

    def start(self) -> asyncio.Task[None]:
        self._loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(current_executor.set, self)
        self.context = ctx
        if self.log is not None:
            last = self.state.fingerprints[-1][1] if self.state.fingerprints else ""
            recorded = last or self.state.fingerprint
            if recorded and recorded != self.workflow.fingerprint:
                # Recorded, so `durable runs show` can say the code changed under the run.
                self.log.append(CodeChanged(fingerprint=self.workflow.fingerprint))
            if self.state.deadline is not None:
                delay = max(0.0, self.state.deadline - time.time())
                self._deadline = self._loop.call_later(delay, self._deadline_passed)
        self._task = self._loop.create_task(self._main(), context=ctx)
        self.updates.start()
        self._task.add_done_callback(lambda _t: self.updates.stop())
        return self._task

    def abort(self) -> None:
        """Stop executing (lease lost, worker stopping, or put aside while it waits).
        Cancelling the workflow's task cancels the steps it awaits, inline or gathered; they
        are not recorded as cancelled, and run again when the run continues: a cancellation
        being delivered (the run compensating when it is parked) no longer records what it
        cuts short; the next execution delivers what is left of it."""
        self.stopping = True
        self.cancelling = False
        if self._deadline is not None:
            self._deadline.cancel()
        if self._task is not None:
            self._task.cancel()

    def _deadline_passed(self) -> None:
        self.timed_out = True
        self.cancelling = True  # what is in flight ends recorded as cancelled
        self.stopping = True  # and nothing new starts: no compensation past the deadline
        if self._task is not None:
            self._task.cancel()

    async def _main(self) -> None:
        wf = self.workflow
        continued: ContinueAsNew | None = None
        try:
            try:
                value = await self._invoke(wf)
            except ContinueAsNew as request:
                value, continued = None, request
            finally:
                self._ending = True
            if self.fatal is None and self.log is not None and self._accepted_cancel():
                # The cancel was accepted: the run ends cancelled even if the workflow
                # swallowed the CancelledError and returned.
                await self._end(RunCancelled(reason=self.state.cancel_reason))
                return
            if self.fatal is not None:
                raise self.fatal
            self._check_all_consumed()
            if self.log is None:
                self.returned = (True, continued if continued is not None else value)
                return
            if continued is not None:
                await self._continue(continued)
                return
            result = encode_value(value, f"the result of workflow {wf.name!r}")
        except EndOfHistory:
            self.reached_end_of_history = True
            return
        except (asyncio.CancelledError, ExecutionStopped) as exc:
            if self.fatal is not None and not self.stopping:  # see fail()
                if self.log is None:
                    self.returned = (False, self.fatal)
                    return
                await self._finish(RunFailed(error=error_info(self.fatal)), failed=True)
                return
            if self.timed_out and self.log is not None:
                info = ErrorInfo(
                    type="durable.RunTimedOut",
                    message=f"the run's deadline passed ({_when(self.state.deadline)})",
                )
                await self._end(RunFailed(error=info))
                return
            # A re-execution of a run whose cancellation was delivered by an earlier one
            # (a compensation parked, or a crash) replays it: not `cancelling`, yet accepted.
            cancelled = isinstance(exc, asyncio.CancelledError) and (
                self.cancelling or self._accepted_cancel()
            )
            replayed = self.log is None and isinstance(exc, asyncio.CancelledError)
            if replayed and self.state.cancel_requested:  # a cancelled run's own outcome
                self.returned = (False, exc)
                return
            if self.log is None and isinstance(exc, asyncio.CancelledError):
                task = self._task
                if task is None or not task.cancelling():
                    # A replay, and the recorded cancellation (a step or wait it ended)
                    # raised in the workflow: its outcome, for replay() to compare.
                    self.returned = (False, exc)
                    return
            if self.stopping or not cancelled or self.log is None:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            await self._end(RunCancelled(reason=self.state.cancel_reason))
            return
        except Exception as exc:
            failure: Exception = self.fatal if self.fatal is not None else exc
            if self.log is None:
                self.returned = (False, failure)
                return
            if self.fatal is None and self._accepted_cancel():
                await self._end(RunCancelled(reason=self.state.cancel_reason))
                return
            await self._finish(RunFailed(error=error_info(failure)), failed=True)
        else:
            await self._finish(RunCompleted(result=msgspec.Raw(result)), failed=False)

    def _accepted_cancel(self) -> bool:
        """A cancel was recorded for this run (not a deadline's): it must end cancelled."""
        return (
            self.log is not None
            and not self.timed_out
            and not self.stopping
            and self.state.cancel_requested
        )

    async def _invoke(self, wf: WorkflowDef) -> Any:
        ctx = Context(self)
        if not wf.takes_input:
            return await wf.fn(ctx)
        raw_input = self.state.input
        arg = decode_value(raw_input, wf.input_type) if raw_input is not None else None
        return await wf.fn(ctx, arg)

    async def _continue(self, request: ContinueAsNew) -> None:
        """ctx.continue_as_new(): see _continue. The worker executes `continued` next."""
        assert self.log is not None
        if self._deadline is not None:
            self._deadline.cancel()
        self.continued = await record_continuation(
            self.log, self.state, request, self.workflow.fingerprint, self.children.settled
        )

    def continue_as_new(self, input: Any) -> NoReturn:
        """See Context.continue_as_new(): the input is encoded here, in the workflow's own
        frame, so a bad one fails the workflow code that passed it (and nothing is written)."""
        guard_command("ctx.continue_as_new()")
        if self.stopping or self._ending:
            raise ExecutionStopped()
        raise ContinueAsNew(msgspec.Raw(encode_value(input, "the input of ctx.continue_as_new()")))

    async def _finish(self, event: RunCompleted | RunFailed, *, failed: bool) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        await self._end(event)

    async def _end(self, event: RunCompleted | RunFailed | RunCancelled) -> None:
        """Record the run's end: its last event. The children still being created (a
        gathered branch the workflow left running) are recorded first, so the end cancels
        them; nothing of this execution is recorded after it (see RunLog.append)."""
        assert self.log is not None
        await self.children.settled()
        await append_end(self.log, event)

    # -- commands issued by workflow code -------------------------------------------------

    def call_step(
        self, step: StepDef, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        """Take the next position now, synchronously, and return a coroutine that gives the
        step's outcome: the recorded one, or a live execution's. Always a coroutine, recorded or
        not, so that code treating it as one (asyncio.create_task) behaves the same on replay.
        Awaited directly, a live step runs inline in the workflow's task: no task to create and
        schedule per step; asyncio.gather wraps each in a task of its own."""
        guard_command("step", step.name)
        if self.stopping or self._ending:
            return _raise(ExecutionStopped())
        pos = self._next_pos
        self._next_pos = pos + 1
        rec = self.state.steps.get(pos)
        if rec is not None:
            if rec.name != step.name:
                return self._diverged(pos, f"step {rec.name!r}", f"step {step.name!r}")
            if rec.status == "succeeded":
                assert rec.result is not None
                return self._recorded(pos, decode_value(rec.result, step.return_type))
            if rec.status == "failed":
                assert rec.error is not None
                if rec.error.type == CANCELLED:
                    return self._recorded(pos, None, asyncio.CancelledError(rec.error.message))
                failed = StepFailed(step.name, pos, rec.attempts, rec.error)
                return self._recorded(pos, None, failed)
        else:
            other = self.recorded_at(pos)
            if other is not None:
                return self._diverged(pos, other, f"step {step.name!r}")
        if self.log is None:
            return _raise(EndOfHistory())
        input_raw = msgspec.Raw(
            encode_value([list(args), kwargs], f"the arguments of step {step.name!r}", wrapping=2)
        )
        return self._live(pos, run_step(self, self.log, pos, step, args, kwargs, input_raw, rec))

    async def _recorded(self, pos: int, value: Any, exc: BaseException | None = None) -> Any:
        """A step's recorded outcome, in its turn (see _order)."""
        refuse_raw_race(self, pos)
        order = self.order
        key = done_key(pos)
        if not order.take_now(key):
            pauses = order.pauses
            await order.turn(key)
            if order.pauses != pauses:  # it let other code run: a raw race may have begun since
                refuse_raw_race(self, pos)
        if exc is not None:
            raise exc
        return value

    async def _live(self, pos: int, body: Coroutine[Any, Any, Any]) -> Any:
        # Only the in-flight count on a step's hot path; a look (see _look) only when a step
        # can change something: a cancellation to deliver, or waits left alone when it ends.
        try:
            refuse_raw_race(self, pos)
        except BaseException:
            body.close()
            raise
        self.inflight += 1
        if self.state.cancel_requested:
            self.poke()
        try:
            value = await body
        except BaseException as exc:
            self._ended_live()
            if isinstance(exc, Exception):  # an outcome: handed back in its turn, as a value
                refuse_raw_race(self, pos)
                await self.order.after_recorded()
            raise
        self._ended_live()
        await self.order.after_recorded()  # a replay's recorded outcomes first (see _order)
        refuse_raw_race(self, pos)
        return value

    def _ended_live(self) -> None:
        self.inflight -= 1
        self.progress += 1
        if self.waits.futures:
            self.poke()

    def recorded_at(self, pos: int) -> str | None:
        """What the log holds at `pos` (for divergence messages), if anything."""
        if pos in self.state.commands:
            return self.state.commands[pos]
        if pos in self.state.steps:
            return f"step {self.state.steps[pos].name!r}"
        if pos in self.state.markers:
            marker = self.state.markers[pos]
            if marker.kind == "patch":
                return f"ctx.patched({decode_value(marker.value)!r})"
            return f"ctx.{marker.kind}()"
        if pos in self.state.waits:
            return self.state.waits[pos].describe()
        return self.state.commands.get(pos)

    # -- durable waits (see _waits) --------------------------------------------------------

    def _wait_command(
        self, kind: str, label: str, signal: str = ""
    ) -> tuple[int, WaitState | None]:
        """Take the next position for a wait of `kind` (label: how divergences name it)."""
        guard_command(label)
        if self.stopping or self._ending:
            raise ExecutionStopped()
        pos = self._next_pos
        self._next_pos = pos + 1
        rec = self.state.waits.get(pos)
        if rec is None:
            other = self.recorded_at(pos)
            if other is not None:
                raise self._divergence(pos, other, label, depth=4)
            if self.log is None:
                raise EndOfHistory()
        elif rec.kind != kind or rec.signal != signal:
            raise self._divergence(pos, rec.describe(), label, depth=4)
        return pos, rec

    def sleep_until(self, when: float) -> Coroutine[Any, Any, None]:
        pos, rec = self._wait_command("timer", "ctx.sleep()")
        if rec is None:
            assert self.log is not None
            self.log.append(TimerStarted(pos=pos, fire_at=when))
            rec = self.state.waits[pos]
        return self._await(rec, decode_value)

    def wait_for_signal(
        self, name: str, timeout: float | None, decode: Callable[[msgspec.Raw], Any]
    ) -> Coroutine[Any, Any, Any]:
        pos, rec = self._wait_command("signal", f"ctx.wait_for_signal({name!r})", name)
        if rec is None:
            assert self.log is not None
            deadline = None if timeout is None else time.time() + timeout
            self.log.append(WaitStarted(pos=pos, signal=name, deadline=deadline))
            rec = self.state.waits[pos]
        return self._await(rec, decode)

    def wait_external(
        self, name: str, timeout: float | None, decode: Callable[[msgspec.Raw], Any]
    ) -> ExternalWait:
        """ctx.wait_external(): its position, its row (durable_completions, same commit) and
        its token now; the outcome when awaited (see _external, _waits)."""
        pos, rec = self._wait_command("external", f"ctx.wait_external(name={name!r})", name)
        if rec is None:
            assert self.log is not None
            now = time.time()
            deadline = None if timeout is None else now + timeout
            started = ExternalStarted(pos=pos, name=name, nonce=new_nonce(), deadline=deadline)
            opened = NewCompletion(pos, name, started.nonce, deadline, now)
            self.log.append(started, at=now, completions=(opened,))
            rec = self.state.waits[pos]
        token = encode_token(self.state.run_id, pos, self.state.externals[pos].nonce)
        wait = rec
        return ExternalWait(token, name, lambda: self._await(wait, decode))

    async def _await(self, rec: WaitState, decode: Callable[[msgspec.Raw], Any]) -> Any:
        if rec.done:
            key = done_key(rec.pos)
            if self.order.take_now(key):  # a sequential replay: no pause, nothing to race it
                refuse_raw_race(self, rec.pos)
                return self.waits.recorded(rec, decode)
            await self.order.turn(key)
        elif self.log is None:
            raise EndOfHistory()
        elif self._ending:  # a branch left running: the run's end is being recorded
            raise ExecutionStopped()
        refuse_raw_race(self, rec.pos)
        # A recorded outcome comes back without suspending: nothing could start a race since.
        live = not rec.done
        try:
            value = await self.waits.wait(rec, decode)
        except Exception:
            if live:
                refuse_raw_race(self, rec.pos)
            raise
        if live:
            refuse_raw_race(self, rec.pos)
        return value

    def select(
        self, aws: Iterable[Awaitable[T]], return_when: str, timeout: float | None
    ) -> Coroutine[Any, Any, tuple[set[asyncio.Future[T]], set[asyncio.Future[T]]]]:
        """ctx.wait(): see _select."""
        return select_wait(self, aws, return_when, timeout)

    def as_completed(self, aws: Iterable[Awaitable[T]], timeout: float | None) -> AsCompleted[T]:
        """ctx.as_completed(): see _select."""
        return AsCompleted(self, aws, timeout)

    def select_command(self, count: int, return_when: str, deadline: float | None) -> WaitState:
        """Take the next position for a select of `count` awaitables (see _select); its
        deadline is the recorded one on a replay."""
        label = f"ctx.wait() of {count} awaitables ({return_when})"
        pos, rec = self._wait_command("select", label)
        if rec is None:
            assert self.log is not None
            start = SelectStarted(pos=pos, count=count, return_when=return_when, deadline=deadline)
            self.log.append(start)
            return self.state.waits[pos]
        if rec.count != count or rec.return_when != return_when:
            raise self._divergence(pos, rec.describe(), label, depth=3)
        return rec

    def take_position(self) -> int:
        """The next position, for a command taken outside the workflow's code (an update's
        acceptance, see _updates)."""
        pos = self._next_pos
        self._next_pos = pos + 1
        return pos

    def on_update(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        validator: Callable[..., object] | None,
    ) -> None:
        """See Context.on_update()."""
        self.updates.register(name, fn, validator)

    def fail(self, err: NonDeterminismError) -> None:
        """A divergence found outside the workflow's code (an update's replay): the run fails
        with it, as with one raised at a command."""
        if self.fatal is None:
            self.fatal = err
        if self._task is not None:
            self._task.cancel()

    def patched(self, change_id: str, *, deprecated: bool = False) -> bool:
        """See Context.patched()."""
        guard_command(f"ctx.patched({change_id!r})")
        return patched(self, change_id, deprecated)

    # -- cancellation, and telling the worker the run is idle (see _watch) -----------------

    def request_cancel(self, item: InboxItem | None, reason: str = "") -> None:
        """Record the cancellation (and ask every unfinished child not abandoned to cancel, in
        the same commit), then deliver it to the workflow at its current await."""
        log = self.log
        if log is None or self.state.finished:
            return
        if item is not None:
            reason = item.payload.decode(errors="replace")
        send = cancel_requests(self.state, reason, time.time())
        event = CancelRequested(reason=reason, inbox_id=item.id if item is not None else 0)
        log.append(event, consume=item.id if item is not None else None, send=send)
        self.children.cancel_recorded()  # those being created are asked when recorded
        self.poke()

    def poke(self) -> None:
        """Something changed: see _watch (a cancel to deliver, or the run only waits)."""
        self.watch.poke()

    def park_problem(self) -> str | None:
        return self.watch.park_problem()

    def marker(self, kind: str, produce: Callable[[], Any]) -> Any:
        guard_command(f"ctx.{kind}()")
        return marker(self, kind, produce)

    def set_event(self, key: str, value: Any) -> None:
        set_event(self, key, value)

    def on_query(self, name: str, fn: Callable[..., Any]) -> None:
        on_query(self, name, fn)

    def write_stream(self, key: str, value: Any, *, close: bool = False) -> None:
        stream_command(self, key, value, close=close)

    # -- divergence -----------------------------------------------------------------------

    def _diverged(self, pos: int, recorded: str, requested: str) -> Coroutine[Any, Any, Any]:
        return _raise(self._divergence(pos, recorded, requested, depth=4))

    def _divergence(
        self, pos: int, recorded: str, requested: str, depth: int = 3
    ) -> NonDeterminismError:
        # depth: frames between here and the workflow code that issued the command.
        err = NonDeterminismError(
            self.state.run_id, pos, recorded, requested, caller_location(depth)
        )
        if self.fatal is None:
            self.fatal = err
        return err

    def _check_all_consumed(self) -> None:
        if self.fatal is not None or self._max_recorded < self._next_pos:
            return
        pos = self._next_pos
        recorded = self.recorded_at(pos) or "a later command"
        raise self._divergence_at_return(pos, recorded)

    def _divergence_at_return(self, pos: int, recorded: str) -> NonDeterminismError:
        err = NonDeterminismError(
            self.state.run_id, pos, recorded, "the workflow to return", self.workflow.source
        )
        self.fatal = err
        return err


def _when(ts: float | None) -> str:
    if ts is None:
        return "no deadline"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
