"""Starting child runs from workflow code (ctx.start_child, ctx.run_child, child.result()): the
executor's child commands, as a base class of RunExecutor (it keeps _executor one screenful).

Every name used here besides the methods below is RunExecutor's: the annotations and stubs
only tell the type checker so (the executor's own definitions override the stubs).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from durable._children import ParentClose
from durable._codec import decode_value
from durable._errors import NonDeterminismError, UnknownWorkflowError
from durable._state import RunState, WaitState
from durable.runtime._child_starts import ChildArgs, ChildStarts, Creation
from durable.runtime._context import ChildRun
from durable.runtime._guard import guard_command
from durable.runtime._order import ReplayOrder, start_key
from durable.runtime._registry import Registry


async def _raise(exc: BaseException) -> Any:
    raise exc


class ChildCommands:
    state: RunState
    registry: Registry | None
    children: ChildStarts
    order: ReplayOrder
    _next_pos: int

    def _wait_command(
        self, kind: str, label: str, signal: str = ""
    ) -> tuple[int, WaitState | None]:
        raise NotImplementedError  # RunExecutor's

    def _divergence(
        self, pos: int, recorded: str, requested: str, depth: int = 3
    ) -> NonDeterminismError:
        raise NotImplementedError  # RunExecutor's

    async def _await(self, rec: WaitState, decode: Callable[[msgspec.Raw], Any]) -> Any:
        raise NotImplementedError  # RunExecutor's

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
        """Take the next position now, at the call, like every command (so that a child
        gathered beside other commands has the same position whenever its task first runs,
        and however that task ends), and return a coroutine that gives the started child (a
        ChildRun), or with `wait` its result. One coroutine: nothing nested is left
        unawaited when a branch is cancelled before it runs.

        Live, the child's creation starts at the call too: a branch cancelled before its
        task ran (a cancellation, a gathered sibling's failure) still ends with its child
        recorded, so the run's end cancels it (a previous execution may have created it)."""
        args = ChildArgs(workflow, input, run_id, version, parent_close, timeout)
        name = self._child_name(workflow, version, label)
        guard_command(f"ctx.start_child({name!r})")
        if self.children.legacy(self._next_pos):
            return self._start_child_legacy(args, name, wait)
        try:
            pos, rec = self._child_command(name)
        except BaseException as exc:  # at the await, as before: the command was async
            return _raise(exc)
        if rec is not None:
            return self._recorded_start(rec, wait)
        return self._started(self.children.create(pos, args, at_call=True), wait)

    def _child_command(self, name: str) -> tuple[int, WaitState | None]:
        pos, rec = self._wait_command("child", f"child run of {name!r}")
        if rec is not None and rec.child_workflow and rec.child_workflow != name:
            raise self._divergence(pos, rec.describe(), f"child run of {name!r}", depth=3)
        return pos, rec

    async def _start_child_legacy(self, args: ChildArgs, name: str, wait: bool) -> Any:
        """The way children were started before they took their position at the call: the
        position is taken when this coroutine first runs (see ChildStarts.legacy)."""
        pos, rec = self._child_command(name)
        if rec is not None:
            return await self._recorded_start(rec, wait)
        return await self._started(self.children.create(pos, args, at_call=False), wait)

    async def _started(self, creation: Creation, wait: bool) -> Any:
        return await self._child(await self.children.started(creation), wait)

    async def _recorded_start(self, rec: WaitState, wait: bool) -> Any:
        await self.order.turn(start_key(rec.pos))
        return await self._child(rec, wait)

    async def _child(self, rec: WaitState, wait: bool) -> Any:
        if wait:
            return await self._await(rec, decode_value)
        return ChildRun(self, rec)  # type: ignore[arg-type]  # self is a RunExecutor

    def _child_name(self, workflow: Any, version: str | None, label: str) -> str:
        """The registered name of the workflow a child run is started with (what ChildStarted
        records), else the label the code gave (a name, or the function's __name__)."""
        if self.registry is None:
            return label
        try:
            return self.registry.workflow(workflow, version).name
        except UnknownWorkflowError:
            return label  # a replay without the child's definition: compare what we can

    def child_result(self, rec: WaitState) -> Coroutine[Any, Any, Any]:
        guard_command(f"the result of {rec.describe()}")
        return self._await(rec, decode_value)
