"""Starting child runs: the children of one executor being created, until recorded.

ctx.start_child() / run_child() take their position at the call, like every command, and
live, the child's creation starts there too (see RunExecutor.start_child). Between the
creation and its ChildStarted:
- the creation counts as running work: the run is neither idle nor parked (the child may end
  before its start is recorded; a parked run would lose the start, and nothing would wake it);
- the branch that started it records the start as it resumes (as a replay resumes it in the
  start's turn, see _order); a branch that stopped awaiting it (cancelled, a gathered sibling
  raised) leaves it to be recorded when done, so the run's end cancels the child;
- the run's end waits for the creations left and records them first: nothing of the
  execution is recorded after the end;
- an execution stopped (parked, lease lost) records nothing: the next one takes the same
  position and finds the child that exists (the creation is idempotent on its run id).

Logs written before children took their position at the call (ChildStarted.at_call false)
are replayed and continued the old way: see ChildStarts.legacy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from durable._children import ParentClose, cancel_request
from durable._events import ChildStarted
from durable._runlog import RunLog
from durable._state import RunState, WaitState
from durable.runtime._stops import ExecutionStopped

# Starts a child run: (workflow, input, run_id, version, parent_run_id, timeout) -> (run id,
# workflow name, version). The worker provides it (the client's start).
ChildStarter = Callable[
    [Any, Any, str, "str | None", str, "float | None"], Awaitable[tuple[str, str, str]]
]


class ChildArgs(NamedTuple):
    """What a ctx.start_child() call gives to create the child with."""

    workflow: Any
    input: Any
    run_id: str | None
    version: str | None
    parent_close: ParentClose
    timeout: float | None


@dataclass(slots=True)
class Creation:
    """A child run being created (ChildStarted not recorded yet)."""

    pos: int
    task: asyncio.Future[tuple[str, str, str]]
    parent_close: ParentClose
    at_call: bool  # what its ChildStarted records
    orphan: bool = False  # the branch that started it stopped awaiting it
    missed_cancel: bool = False  # in flight when the run's cancellation was recorded


class ChildHost(Protocol):
    """The executor whose children these are (RunExecutor; this module sits below it)."""

    state: RunState
    log: RunLog | None
    stopping: bool
    cancelling: bool
    progress: int
    start_child_run: ChildStarter | None

    def poke(self) -> None: ...

    def recorded_at(self, pos: int) -> str | None: ...


class ChildStarts:
    def __init__(self, host: ChildHost) -> None:
        self.host = host
        # By position, until their ChildStarted is recorded (or they are forgotten); those
        # whose creation is in flight keep the run from being idle.
        self.creating: dict[int, Creation] = {}
        self.in_flight = 0
        children = [w for w in host.state.waits.values() if w.kind == "child"]
        self._legacy = any(not w.at_call for w in children)
        self._at_call = any(w.at_call for w in children)

    def legacy(self, pos: int) -> bool:
        """Whether the log was written before children took their position at the call, and
        must be replayed that way (the position taken when the call's coroutine first runs):
        it holds a child started the old way (ChildStarted.at_call False), or it holds no
        child yet and something else where a child now asks for a position (a run waiting
        when the engine was upgraded, its child's creation not recorded yet)."""
        if not self._legacy and not self._at_call:
            self._legacy = self.host.recorded_at(pos) is not None
        return self._legacy

    def create(self, pos: int, args: ChildArgs, *, at_call: bool) -> Creation:
        """Start creating the child at `pos` (idempotent on its run id)."""
        host = self.host
        assert host.log is not None and host.start_child_run is not None
        run_id = host.state.run_id
        child_id = args.run_id if args.run_id is not None else f"{run_id}.{pos}"
        task = asyncio.ensure_future(
            host.start_child_run(
                args.workflow, args.input, child_id, args.version, run_id, args.timeout
            )
        )
        creation = Creation(pos, task, args.parent_close, at_call)
        self.creating[pos] = creation
        self.in_flight += 1
        task.add_done_callback(lambda _t: self._created(creation))
        return creation

    def _created(self, creation: Creation) -> None:
        """The creation ended: if the branch that started it no longer awaits it (cancelled,
        or never ran), record the child now: the run's end must cancel it."""
        self.in_flight -= 1
        self.host.progress += 1
        task = creation.task
        if creation.orphan or task.cancelled() or task.exception() is not None:
            self.record(creation)  # a failed one is only forgotten
        self.host.poke()

    async def started(self, creation: Creation) -> WaitState:
        """The started child's recorded wait, once created: for the branch that started it."""
        try:
            await asyncio.shield(creation.task)
        except asyncio.CancelledError:
            # The run is being cancelled, timed out or stopped while its child is created:
            # the creation goes on, and is recorded once done unless the execution stopped.
            creation.orphan = True
            if creation.task.done():
                self.record(creation)
            raise
        # Recorded by the branch itself as it resumes (as a replay resumes it in the
        # start's turn), unless the run's end recorded it already.
        rec = self.record(creation)
        if rec is None:
            raise ExecutionStopped()
        return rec

    def record(self, creation: Creation) -> WaitState | None:
        """Append the ChildStarted of a creation that succeeded, once; None if it is not
        recorded (it failed; the execution stopped; the run ended)."""
        host = self.host
        state = host.state
        task = creation.task
        settling = self.creating.get(creation.pos) is creation and task.done()
        if settling:
            del self.creating[creation.pos]
        rec = state.waits.get(creation.pos)
        if rec is not None and rec.kind == "child":
            return rec
        if not settling:
            return None  # still in flight, or settled already without being recorded
        if task.cancelled() or task.exception() is not None:
            return None
        if state.finished or (host.stopping and not host.cancelling):
            return None  # stopped: the next execution finds the child (idempotent)
        assert host.log is not None
        rid, name, ver = task.result()
        # Its creation was in flight when the run's cancellation was recorded: that commit
        # could not ask it to cancel; this one does (see durable._children).
        ask = creation.missed_cancel and rid not in state.children
        start = ChildStarted(
            pos=creation.pos,
            run_id=rid,
            workflow=name,
            version=ver,
            parent_close=creation.parent_close,
            at_call=creation.at_call,
            cancel_asked=ask,
        )
        send = (cancel_request(rid, state.cancel_reason, time.time()),) if ask else ()
        host.log.append(start, send=send)
        host.progress += 1
        self._at_call = self._at_call or creation.at_call
        return state.waits[creation.pos]

    def cancel_recorded(self) -> None:
        """The run's CancelRequested was just appended: the children being created were not
        known to its commit; each is asked to cancel in the commit that records it."""
        for creation in self.creating.values():
            if creation.parent_close == "cancel":
                creation.missed_cancel = True

    async def settled(self) -> None:
        """Before the run's end is recorded: wait for the children being created and record
        them (the end then cancels them with the others). None starts any more."""
        while self.creating:
            pending = list(self.creating.values())
            await asyncio.wait([c.task for c in pending])
            for creation in pending:
                self.record(creation)
