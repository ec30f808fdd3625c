"""Updates: requests from outside (app.update) that a workflow's handler answers durably.

An update reaches the run as an inbox item (kind "update", its row in durable_updates made it
exactly-once). The executor takes it only once its replay has caught up (the log's every
recorded outcome taken) and the workflow's tasks are all blocked, and only if the workflow has
registered a handler of that name (ctx.on_update):
- the validator, if any, runs first, synchronously; it raises -> the update is rejected:
  nothing enters the log, the row says rejected and the item is consumed (one commit);
- else UpdateAccepted takes the next position (the item consumed, the row accepted, in the
  same commit) and the handler starts in a task of its own, beside the workflow's: it may call
  steps, sleep, wait for signals, start children, like a gathered branch;
- its end is UpdateCompleted (result or error), with the row completed/failed in that commit.
An item for a name no handler was registered for waits while the run works, and is rejected
when the run goes idle (a parked run must not hold an item it cannot take).

Replay. Live, an update is accepted between the workflow's turns: every task blocked, at the
position the workflow's commands had reached. A replay relaunches the handler at the same
point: the launcher waits until its acceptance is the next recorded outcome (see _order) and
the workflow's tasks are blocked again, starts the handler task, then lets the order move on,
so the tasks later outcomes wake run after it, as they did live. Its position must then be the
next one (else NonDeterminismError: the code before it changed).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

from durable._codec import decode_value, encode_value, error_info
from durable._errors import ErrorInfo, NonDeterminismError
from durable._events import UpdateAccepted, UpdateCompleted
from durable._runlog import RunLog
from durable._state_updates import UpdateState
from durable.runtime._context import WorkflowRuntime, current_executor
from durable.runtime._order import ReplayOrder, done_key, start_key
from durable.runtime._registry import WorkflowDef
from durable.runtime._stops import EndOfHistory, ExecutionStopped
from durable.runtime._waits import Waits
from storage import InboxItem, UpdateChange

log_failure = logging.getLogger("durable.updates").warning
# Loop iterations between looks at held items and launchers (a few: they wait for the
# workflow's tasks to block, which takes one or two iterations after each outcome).
HELD_LOOK_DELAY = 0.005


class UpdatePayload(msgspec.Struct, frozen=True):
    """What an update's row and inbox item carry: its handler's name and its arguments."""

    name: str
    args: msgspec.Raw


class Handler(msgspec.Struct, frozen=True):
    fn: Callable[..., Awaitable[Any]]
    validator: Callable[..., object] | None


class UpdateHost(WorkflowRuntime, Protocol):
    """The executor (RunExecutor; this module sits below it)."""

    log: RunLog | None
    order: ReplayOrder
    stopping: bool
    progress: int
    races: dict[int, list[asyncio.Future[Any]]]
    waits: Waits

    @property
    def workflow_task(self) -> asyncio.Task[None] | None: ...

    @property
    def ending(self) -> bool: ...

    @property
    def workflow(self) -> WorkflowDef: ...

    def take_position(self) -> int: ...

    def fail(self, err: NonDeterminismError) -> None: ...

    def poke(self) -> None: ...


class Updates:
    def __init__(self, host: UpdateHost) -> None:
        self.host = host
        self.handlers: dict[str, Handler] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}  # handlers running, by update id
        self._held: dict[int, InboxItem] = {}  # items not taken yet, by inbox id
        self._rejected: set[int] = set()  # items rejected by this execution
        self._rejecting = 0  # rejections being written
        self._looking: asyncio.TimerHandle | None = None
        self._launchers: list[UpdateState] = []  # a replay's accepted updates to relaunch
        self._context: contextvars.Context | None = None

    # -- workflow code -------------------------------------------------------------------

    def register(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        validator: Callable[..., object] | None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"ctx.on_update() needs a non-empty name, not {name!r}")
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"ctx.on_update({name!r}, fn): fn must be an async function (async def), not {fn!r}"
            )
        if validator is not None and (
            not callable(validator) or inspect.iscoroutinefunction(validator)
        ):
            raise TypeError(
                f"ctx.on_update({name!r}, validator=...): the validator must be a plain "
                "(not async) function that raises to reject the update"
            )
        self.handlers[name] = Handler(fn, validator)
        if self._held:
            self._look_soon()

    # -- the executor's start and end ----------------------------------------------------

    def start(self) -> None:
        """Before the workflow first runs: the context handlers run in, and a launcher for
        each update the log has accepted (a replay)."""
        ctx = contextvars.copy_context()
        ctx.run(current_executor.set, self.host)
        self._context = ctx
        self._launchers = sorted(self.host.state.updates.values(), key=lambda u: u.accept_seq)
        if self._launchers:
            self._look_soon(every_iteration=True)

    def stop(self) -> None:
        """The workflow's task ended (the run ended, or the execution stopped): handlers still
        running end with it (their callers learn the run's end from the update's row)."""
        if self._looking is not None:
            self._looking.cancel()
            self._looking = None
        for task in self.tasks.values():
            task.cancel()

    # -- what arrives --------------------------------------------------------------------

    def deliver(self, item: InboxItem) -> None:
        state = self.host.state
        if (
            self.host.log is None
            or state.finished
            or item.id in state.inbox_ids
            or item.id in self._rejected
            or item.id in self._held
        ):
            return
        self._held[item.id] = item
        self._look_soon()

    def before_idle(self) -> bool:
        """The run looks idle (the worker may park it): items still held are taken now or
        rejected, as none may stay (a released run with an item in its inbox is ready at
        once). True: the run is not idle after all (an update was accepted, a rejection is
        being written, or a replay has not caught up)."""
        if self._rejecting or self._handlers_working():
            return True
        if not self._held and not self._launchers:
            return False
        if self._launchers or not self._caught_up():
            return True
        accepted = False
        for item in sorted(self._held.values(), key=lambda i: i.id):
            payload = self._payload(item)
            if payload is not None and payload.name in self.handlers:
                accepted = self._take(item, payload) or accepted
            else:
                self._reject_missing(item, payload)
        return accepted or bool(self._rejecting)

    def _handlers_working(self) -> bool:
        """Whether a handler is held by something other than the run's durable waits (a
        replay's turn, a library's future, a runnable task): parked now, it would stop
        half-way with nothing to wake the run, and its caller would wait."""
        durable = {id(f) for f in self.host.waits.futures.values()}
        races = self.host.races

        def waits_only(fut: asyncio.Future[Any]) -> bool:
            if id(fut) in durable:
                return True
            if fut.done():
                return False
            if isinstance(fut, asyncio.Task):
                blocker = getattr(fut, "_fut_waiter", None)
                return blocker is not None and waits_only(blocker)
            members = races.get(id(fut))
            if members is None:
                members = getattr(fut, "_children", None)  # asyncio.gather's future
            if members is None:
                return False
            return all(waits_only(m) for m in members if not m.done())

        return not all(waits_only(t) for t in self.tasks.values() if not t.done())

    # -- taking held items ---------------------------------------------------------------

    def _look_soon(self, *, every_iteration: bool = False) -> None:
        """Look again soon: a launcher at every loop iteration (while the order waits for
        it, it gives way to later outcomes after a few quiet iterations, see _order)."""
        if self._looking is None:
            loop = asyncio.get_running_loop()
            delay = 0.0 if every_iteration else HELD_LOOK_DELAY
            self._looking = loop.call_later(delay, self._look)

    def _look(self) -> None:
        self._looking = None
        host = self.host
        task = host.workflow_task
        if host.stopping or host.ending or task is None or task.done():
            return
        if self._launchers:
            self._relaunch()
            if self._launchers:
                self._look_soon(every_iteration=True)
                return
        if not self._held or host.log is None:
            return
        if not self._caught_up():
            self._look_soon()
            return
        for item in sorted(self._held.values(), key=lambda i: i.id):
            payload = self._payload(item)
            if payload is None:
                continue
            if payload.name in self.handlers:
                self._take(item, payload)
            # else: held until a handler is registered, or the run goes idle (held_problem)

    def _caught_up(self) -> bool:
        """Live (nothing recorded is left to replay) and every task of the workflow blocked:
        a point a replay can find again (see the module's docstring)."""
        host = self.host
        return not host.is_replaying and not host.order.active and not self._runnable()

    def runnable(self) -> bool:
        """See _runnable (the replay order asks it too: ReplayOrder.runnable)."""
        return self._runnable()

    def _runnable(self) -> bool:
        """Whether a task of the workflow (its own, a gathered branch's, a handler's) is
        ready to run: it would take positions before anything accepted now."""
        seen: set[int] = set()
        races = self.host.races

        def visit(fut: asyncio.Future[Any]) -> bool:
            if id(fut) in seen:
                return False
            seen.add(id(fut))
            if fut.done():
                return True
            if isinstance(fut, asyncio.Task):
                blocker = getattr(fut, "_fut_waiter", None)
                return blocker is None or visit(blocker)
            members = races.get(id(fut))
            if members is None:
                members = getattr(fut, "_children", None)  # asyncio.gather's future
            if members is None:
                return False
            if members and all(m.done() for m in members):
                return True  # it is about to be done: its awaiter runs next
            return any(visit(m) for m in members if not m.done())

        roots: list[asyncio.Future[Any]] = list(self.tasks.values())
        task = self.host.workflow_task
        if task is not None and not task.done():
            roots.append(task)
        return any(visit(r) for r in roots if not r.done())

    def _payload(self, item: InboxItem) -> UpdatePayload | None:
        try:
            return msgspec.msgpack.decode(item.payload, type=UpdatePayload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._reject(item, ErrorInfo("durable.BadUpdate", "the update's payload is unreadable"))
            return None

    def _take(self, item: InboxItem, payload: UpdatePayload) -> bool:
        """Validate, then accept; False if rejected."""
        host = self.host
        del self._held[item.id]
        if item.name in host.state.updates:
            # Accepted already: its acceptance consumed the item the request row let in, and
            # the row lets in no other. Ignored in this execution rather than looked at again.
            self._rejected.add(item.id)
            return False
        handler = self.handlers[payload.name]
        args = self._args(payload)
        if handler.validator is not None:
            failure = self._validate(payload.name, handler.validator, args)
            if failure is not None:
                self._reject(item, failure)
                return False
        log = host.log
        assert log is not None
        pos = host.take_position()
        accepted = UpdateAccepted(
            pos=pos,
            update_id=item.name,
            name=payload.name,
            args=payload.args,
            inbox_id=item.id,
        )
        change = UpdateChange(item.name, "accepted", at=time.time())
        log.append(accepted, consume=item.id, updates=(change,))
        host.progress += 1
        self._launch(host.state.updates[item.name], handler, args)
        return True

    def _args(self, payload: UpdatePayload) -> list[Any]:
        value = decode_value(payload.args)
        return list(value) if isinstance(value, list | tuple) else [value]

    def _validate(
        self, name: str, validator: Callable[..., object], args: list[Any]
    ) -> ErrorInfo | None:
        """Run the validator; what it raised, if it did. It may only read: a durable command
        (a step, ctx.now()...) would take a position the replay does not repeat."""
        host = self.host
        before = host.positions_used
        host.stopping = True  # every command refuses (ExecutionStopped)
        try:
            validator(*args)
        except ExecutionStopped:
            return ErrorInfo(
                "durable.InvalidValidator",
                f"the validator of update {name!r} issued a durable command (a step, "
                "ctx.now(), a wait...): validators may only read the workflow's state",
            )
        except Exception as exc:
            return error_info(exc)
        finally:
            host.stopping = False
        if host.positions_used != before:  # ctx.patched() takes its position first
            host.fail(
                NonDeterminismError(
                    host.state.run_id,
                    before,
                    "nothing",
                    f"a command in the validator of update {name!r}",
                    host.workflow.source,
                )
            )
        return None

    def _reject_missing(self, item: InboxItem, payload: UpdatePayload | None) -> None:
        self._held.pop(item.id, None)
        if payload is None:
            return
        known = ", ".join(repr(n) for n in sorted(self.handlers)) or "none"
        self._reject(
            item,
            ErrorInfo(
                "durable.NoUpdateHandler",
                f"workflow {self.host.state.workflow!r} has no update handler {payload.name!r} "
                f"at this point (handlers registered: {known}); register it with "
                "ctx.on_update() before the workflow waits",
            ),
        )

    def _reject(self, item: InboxItem, error: ErrorInfo) -> None:
        self._held.pop(item.id, None)
        self._rejected.add(item.id)
        log = self.host.log
        assert log is not None
        change = UpdateChange(
            item.name, "rejected", error=msgspec.msgpack.encode(error), at=time.time()
        )
        self._rejecting += 1
        fut = asyncio.ensure_future(log.store.reject_update(item.run_id, change, item.id))
        fut.add_done_callback(self._rejection_written)

    def _rejection_written(self, fut: asyncio.Future[None]) -> None:
        self._rejecting -= 1
        if not fut.cancelled() and fut.exception() is not None:
            # The item stays in the inbox: the next execution takes or rejects it again.
            log_failure("rejecting an update failed: %s", fut.exception())
        elif self.host.log is not None:
            self.host.log.notify()  # its caller, if waiting in this process
        self.host.poke()  # the run may be idle now

    # -- handlers ------------------------------------------------------------------------

    def _launch(self, update: UpdateState, handler: Handler, args: list[Any]) -> None:
        ctx = self._context
        assert ctx is not None
        loop = asyncio.get_running_loop()
        task = ctx.run(loop.create_task, self._run(update, handler, args))
        self.tasks[update.update_id] = task

    async def _run(self, update: UpdateState, handler: Handler, args: list[Any]) -> None:
        host = self.host
        try:
            try:
                value = await handler.fn(*args)
                outcome = UpdateCompleted(
                    update.update_id,
                    result=msgspec.Raw(
                        encode_value(value, f"the result of update {update.name!r}")
                    ),
                )
            except (asyncio.CancelledError, ExecutionStopped, EndOfHistory):
                raise
            except NonDeterminismError as exc:
                host.fail(exc)  # the run fails with it, as a divergence in its own code
                return
            except Exception as exc:
                outcome = UpdateCompleted(update.update_id, error=error_info(exc))
            # The handler's end is an outcome like a step's: a replay hands it back in its
            # turn (the tasks waiting for later outcomes, the workflow's end among them, go
            # on after it, as they did live); a live one after every recorded outcome.
            if update.done:
                await host.order.turn(done_key(update.pos))
            else:
                await host.order.after_recorded()
        finally:
            self.tasks.pop(update.update_id, None)
            host.progress += 1
            host.poke()
        log = host.log
        if log is None or update.done or host.state.finished or host.stopping:
            return
        status = "failed" if outcome.error is not None else "completed"
        change = UpdateChange(
            update.update_id,
            status,
            result=None if outcome.error is not None else bytes(outcome.result),
            error=None if outcome.error is None else msgspec.msgpack.encode(outcome.error),
            at=time.time(),
        )
        log.append(outcome, updates=(change,))

    def _relaunch(self) -> None:
        """A replay: start the handlers of recorded acceptances, each in its turn."""
        host = self.host
        order = host.order
        while self._launchers:
            update = self._launchers[0]
            key = start_key(update.pos)
            if not order.is_next(key) or self._runnable():
                return
            self._launchers.pop(0)
            if host.positions_used != update.pos:
                err = NonDeterminismError(
                    host.state.run_id,
                    update.pos,
                    f"the acceptance of update {update.name!r}",
                    f"the replay at position {host.positions_used} there",
                    host.workflow.source,
                )
                host.fail(err)
                return
            handler = self.handlers.get(update.name)
            if handler is None:
                err = NonDeterminismError(
                    host.state.run_id,
                    update.pos,
                    f"the acceptance of update {update.name!r}",
                    f"no handler {update.name!r} registered at that point",
                    host.workflow.source,
                )
                host.fail(err)
                return
            host.take_position()
            # The handler's task first, then the order moves on: the tasks the next
            # outcomes wake run after it, as they did live.
            self._launch(update, handler, self._args(UpdatePayload(update.name, update.args)))
            order.ready(key)


def refuse_update(log: RunLog, item: InboxItem, why: str) -> None:
    """Reject an update a run cannot take at all (a DAG run's): its row rejected, its item
    consumed, nothing in the log."""
    error = msgspec.msgpack.encode(ErrorInfo("durable.UpdatesNotSupported", why))
    change = UpdateChange(item.name, "rejected", error=error, at=time.time())
    fut = asyncio.ensure_future(log.store.reject_update(item.run_id, change, item.id))

    def written(f: asyncio.Future[None]) -> None:
        if not f.cancelled() and f.exception() is None:
            log.notify()  # its caller, if waiting in this process

    fut.add_done_callback(written)
