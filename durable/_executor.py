"""Executing one run: the workflow coroutine re-executed against its log.

Every command the workflow issues (a step call, ctx.now()...) takes the next position. If the log
holds that position, the recorded outcome is returned without running anything; if not, the
command runs live and its outcome is appended. The same code serves live execution, recovery
after a crash (the log is simply longer) and the replay debugger (nothing may run live).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

import msgspec

from durable._codec import decode_value, encode_value, error_info
from durable._context import Context, current_executor
from durable._errors import NonDeterminismError, StepFailed
from durable._events import MarkerRecorded, RunCompleted, RunFailed
from durable._registry import StepDef, WorkflowDef, caller_location
from durable._runlog import RunLog, append_end
from durable._state import RunState
from durable._step_runner import run_step


async def _value(value: Any) -> Any:
    return value


async def _raise(exc: BaseException) -> Any:
    raise exc


class EndOfHistory(BaseException):
    """Replay reached a command the log has no outcome for. A BaseException so that workflow
    code catching Exception cannot swallow it."""


class RunExecutor:
    def __init__(
        self,
        state: RunState,
        workflow: WorkflowDef,
        log: RunLog | None,
        *,
        step_pool: Executor | None = None,
    ) -> None:
        self.state = state
        self.workflow = workflow
        self.log = log  # None: replay only, nothing may run or be written
        self.step_pool = step_pool
        self._next_pos = 0
        self._max_recorded = max([*state.steps, *state.markers], default=-1)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fatal: NonDeterminismError | None = None
        self.reached_end_of_history = False
        self.returned: tuple[bool, Any] | None = None  # replay: (ok, value or exception)

    @property
    def is_replaying(self) -> bool:
        return self._next_pos <= self._max_recorded

    @property
    def positions_used(self) -> int:
        return self._next_pos

    def start(self) -> asyncio.Task[None]:
        self._loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(current_executor.set, self)
        self._task = self._loop.create_task(self._main(), context=ctx)
        return self._task

    def abort(self) -> None:
        """Stop executing (lease lost, worker stopping). Cancelling the workflow's task cancels
        the steps it awaits, inline or gathered."""
        if self._task is not None:
            self._task.cancel()

    async def _main(self) -> None:
        wf = self.workflow
        try:
            value = await self._invoke(wf)
            if self.fatal is not None:
                raise self.fatal
            self._check_all_consumed()
            if self.log is None:
                self.returned = (True, value)
                return
            result = encode_value(value, f"the result of workflow {wf.name!r}")
        except EndOfHistory:
            self.reached_end_of_history = True
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure: Exception = self.fatal if self.fatal is not None else exc
            if self.log is None:
                self.returned = (False, failure)
                return
            await self._finish(RunFailed(error=error_info(failure)), failed=True)
        else:
            await self._finish(RunCompleted(result=msgspec.Raw(result)), failed=False)

    async def _invoke(self, wf: WorkflowDef) -> Any:
        ctx = Context(self)
        if not wf.takes_input:
            return await wf.fn(ctx)
        raw_input = self.state.input
        arg = decode_value(raw_input, wf.input_type) if raw_input is not None else None
        return await wf.fn(ctx, arg)

    async def _finish(self, event: RunCompleted | RunFailed, *, failed: bool) -> None:
        assert self.log is not None
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
        pos = self._next_pos
        self._next_pos = pos + 1
        rec = self.state.steps.get(pos)
        if rec is not None:
            if rec.name != step.name:
                return self._diverged(pos, f"step {rec.name!r}", f"step {step.name!r}")
            if rec.status == "succeeded":
                assert rec.result is not None
                return _value(decode_value(rec.result, step.return_type))
            if rec.status == "failed":
                assert rec.error is not None
                return _raise(StepFailed(step.name, pos, rec.attempts, rec.error))
        elif pos in self.state.markers:
            kind = self.state.markers[pos].kind
            return self._diverged(pos, f"ctx.{kind}()", f"step {step.name!r}")
        if self.log is None:
            return _raise(EndOfHistory())
        input_raw = msgspec.Raw(
            encode_value([list(args), kwargs], f"the arguments of step {step.name!r}")
        )
        return run_step(self, self.log, pos, step, args, kwargs, input_raw, rec)

    def marker(self, kind: str, produce: Callable[[], Any]) -> Any:
        pos = self._next_pos
        self._next_pos = pos + 1
        recorded = self.state.markers.get(pos)
        if recorded is not None:
            if recorded.kind != kind:
                raise self._divergence(pos, f"ctx.{recorded.kind}()", f"ctx.{kind}()")
            return decode_value(recorded.value)
        if pos in self.state.steps:
            raise self._divergence(pos, f"step {self.state.steps[pos].name!r}", f"ctx.{kind}()")
        if self.log is None:
            raise EndOfHistory()
        value = produce()
        raw = msgspec.Raw(encode_value(value, f"ctx.{kind}()"))
        self.log.append(MarkerRecorded(pos=pos, kind=kind, value=raw))
        return value

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
        recorded = (
            f"step {self.state.steps[pos].name!r}"
            if pos in self.state.steps
            else f"ctx.{self.state.markers[pos].kind}()"
            if pos in self.state.markers
            else "a later command"
        )
        raise self._divergence_at_return(pos, recorded)

    def _divergence_at_return(self, pos: int, recorded: str) -> NonDeterminismError:
        err = NonDeterminismError(
            self.state.run_id, pos, recorded, "the workflow to return", self.workflow.source
        )
        self.fatal = err
        return err
