"""Running one step live: attempts, timeouts, retry delays, recording the outcome.

At-least-once execution, exactly-once recording: an attempt may run again if the process dies
before its outcome is durable, but the log holds one StepCompleted per step, and every later
execution of the workflow reads that one result.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from concurrent.futures import Executor
from typing import Any, Protocol

import msgspec

from durable._codec import checked, encode_value, error_info
from durable._errors import ErrorInfo, SerializationError, StepFailed, StepTimeoutError
from durable._events import StepCompleted, StepStarted
from durable._events import StepFailed as StepFailedEvent
from durable._runlog import RunLog
from durable._state import CANCELLED, StepState
from durable.runtime._context import StepContext, _current_step, current_executor
from durable.runtime._registry import DEFAULT_MAX_CRASHES, StepDef
from durable.runtime._stops import ExecutionStopped
from durable.runtime._streams import StepStreams, current_streams, step_progress, writer_of
from storage import StreamClosedError


class StepHost(Protocol):
    """What runs steps: a workflow's executor or a DAG's; sync bodies go to its thread pool."""

    @property
    def step_pool(self) -> Executor | None: ...

    # True while the run's cancellation is being delivered: a step it stops is recorded as
    # cancelled (not re-run when the run continues); otherwise a stopped step is not recorded.
    cancelling: bool


# A step whose attempts keep being cut short by the process dying (it crashes the worker, or
# exhausts its memory) must not crash-loop forever: after StepDef.max_crashes interrupted
# starts (@app.step(max_crashes=N), App(max_step_crashes=N), default 10) it fails.
MAX_INTERRUPTED_STARTS = DEFAULT_MAX_CRASHES


async def run_step(
    executor: StepHost,
    log: RunLog,
    pos: int,
    step: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    input_raw: msgspec.Raw,
    prior: StepState | None,
    *,
    reattach: bool = False,
) -> Any:
    """Run the step at `pos` to its recorded outcome.

    reattach: an attempt started without an outcome (`prior` running) is continued under its
    recorded StepStarted instead of being started again, and is not counted against the
    crash-loop guard. Only for bodies that cannot take the process down and that resume
    from the recorded start by themselves (a DAG delay sleeps until first start + duration):
    such a step is interrupted on purpose each time its parked run is woken early, and must
    neither grow the log nor run out of interrupted starts.
    """
    policy = step.retry
    # A crash-interrupted attempt (started, no outcome) runs again under the same number.
    attempt = (prior.failures if prior is not None else 0) + 1
    next_at = prior.next_attempt_at if prior is not None else None
    base = prior.retry_base if prior is not None else 0  # attempts before a `durable retry`
    again = False  # an attempt already ran in this execution
    resumed = reattach and prior is not None and prior.status == "running"
    # The last attempt was cut short (the process died): this one's start is made durable
    # before its body runs, whatever else this execution has done.
    interrupted = not resumed and prior is not None and prior.status == "running"
    if not resumed and prior is not None and prior.starts - prior.failures >= step.max_crashes:
        error = ErrorInfo(
            type="durable.StepInterrupted",
            message=(
                f"step {step.name!r} crashed its worker process {prior.starts - prior.failures} "
                f"times (limit max_crashes={step.max_crashes}): the process died during each "
                "attempt (os.kill/os._exit, a segfault, the OOM killer?); failed without "
                "running it again"
            ),
        )
        log.append(StepFailedEvent(pos=pos, attempt=attempt, error=error, retryable=False))
        raise StepFailed(step.name, pos, attempt, error)
    while True:
        if next_at is not None:
            delay = next_at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if log.state.finished:
            # A branch the workflow left running when its run ended (a gathered sibling
            # raised): no more attempts; their events would follow the run's end.
            raise ExecutionStopped()
        if resumed:
            resumed = False  # the recorded start stands; a retry after it starts anew
        else:
            log.append(StepStarted(pos=pos, name=step.name, attempt=attempt, input=input_raw))
        # The body's effects may depend on earlier results: those must be durable first.
        # And until an attempt has ended in this execution, the body may be the one that
        # killed the last one: its StepStarted must be durable too, or the crash-loop guard
        # above would never see the starts it counts. Once one attempt has ended here, the
        # StepStarted rides with the outcome's commit (one commit per step).
        confirm = not log.attempt_ended or interrupted
        interrupted = False
        barrier = log.all_durable() if confirm else log.results_durable()
        if barrier is not None:
            await barrier
        retryable = True
        # Stream values earlier attempts of this call wrote (none if it never started before).
        written = await step_progress(log, pos) if prior is not None or again else {}
        again = True
        streams = StepStreams(writer_of(log), pos, asyncio.get_running_loop())
        try:
            call = StepContext(log.state.run_id, pos, step.name, attempt, written)
            value = await _attempt(executor, step, args, kwargs, call, streams)
            encoded = encode_value(value, f"the result of step {step.name!r}")
            # Checked against the step's return annotation before it is recorded: a wrong
            # type fails the step here (not retried), not a later step that uses it.
            result = checked(encoded, step.return_type, f"the result of step {step.name!r}")
            if streams.used:
                await streams.flushed()  # a recorded result implies durable stream values
        except asyncio.CancelledError:
            log.attempt_ended = True
            if executor.cancelling:
                info = ErrorInfo(type=CANCELLED, message=f"step {step.name!r} was cancelled")
                log.append(StepFailedEvent(pos=pos, attempt=attempt, error=info, retryable=False))
            raise
        except (SerializationError, StreamClosedError) as exc:
            error, retryable = error_info(exc), False  # the same value would fail again
        except Exception as exc:
            error = error_info(exc)
            retryable = not isinstance(exc, policy.non_retryable)
        else:
            log.attempt_ended = True
            # Not awaited: see RunLog. The next step body, or the run's end, waits for it.
            log.append(StepCompleted(pos=pos, result=msgspec.Raw(encoded)))
            return result
        log.attempt_ended = True
        final = not retryable or attempt - base >= policy.max_attempts
        next_at = None if final else time.time() + policy.delay(attempt)
        log.append(
            StepFailedEvent(
                pos=pos, attempt=attempt, error=error, retryable=not final, next_attempt_at=next_at
            )
        )
        if final:
            raise StepFailed(step.name, pos, attempt, error)
        attempt += 1


async def _attempt(
    executor: StepHost,
    step: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    call: StepContext,
    streams: StepStreams,
) -> Any:
    timeout = step.timeout
    attempt = call.attempt
    if step.is_async:
        # The body runs in the workflow's task (or a gather child of it): clear the marker
        # there, so that a step the body calls is a plain call, not a recorded one.
        token = current_executor.set(None)
        step_token = _current_step.set(call)
        streams_token = current_streams.set(streams)
        try:
            return await _attempt_async(step, args, kwargs, attempt, timeout)
        finally:
            current_streams.reset(streams_token)
            _current_step.reset(step_token)
            current_executor.reset(token)
    loop = asyncio.get_running_loop()
    # The thread gets a copy of the context with the step set and the workflow marker cleared:
    # a step the body calls from its thread is a plain call.
    thread_ctx = contextvars.copy_context()
    thread_ctx.run(current_executor.set, None)
    thread_ctx.run(_current_step.set, call)
    thread_ctx.run(current_streams.set, streams)
    body = functools.partial(thread_ctx.run, step.fn, *args, **kwargs)
    fut = loop.run_in_executor(executor.step_pool, body)
    if timeout is None:
        return await fut
    try:
        return await asyncio.wait_for(fut, timeout)
    except TimeoutError:
        if not fut.done() or fut.cancelled():
            # A thread can't be interrupted: the attempt is abandoned and counted as failed.
            raise _timed_out(step, attempt) from None
        raise


async def _attempt_async(
    step: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    attempt: int,
    timeout: float | None,
) -> Any:
    if timeout is None:
        return await step.fn(*args, **kwargs)
    cm = asyncio.timeout(timeout)
    try:
        async with cm:
            value = await step.fn(*args, **kwargs)
    except Exception:
        # Past its deadline the attempt is failed, whatever the body did with the
        # cancellation (re-raised it, raised something else while cleaning up...).
        if cm.expired():
            raise _timed_out(step, attempt) from None
        raise
    if cm.expired():  # the body swallowed the cancellation and returned: still timed out
        raise _timed_out(step, attempt)
    return value


def _timed_out(step: StepDef, attempt: int) -> StepTimeoutError:
    return StepTimeoutError(
        f"step {step.name!r} attempt {attempt} timed out after {step.timeout:g}s and was cancelled"
    )
