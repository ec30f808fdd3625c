"""The two ways an execution of a run stops without an outcome of its own: the replay reached
the end of the log, or the worker stopped executing the run. BaseExceptions, so that workflow
code catching Exception cannot swallow them."""

from __future__ import annotations


class EndOfHistory(BaseException):
    """Replay reached a command the log has no outcome for."""


class ExecutionStopped(BaseException):
    """The worker stopped executing the run (it waits for a timer or a signal and was put
    aside, its lease was lost, the worker is stopping): every command raises it, so workflow
    code unwinding from the cancellation (a `finally`, an `except CancelledError` running
    compensation steps) records nothing. The run continues later from its log."""
