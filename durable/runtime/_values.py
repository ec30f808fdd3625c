"""ctx.set_event() and ctx.on_query(): what a workflow shows the outside.

set_event takes a position like every command: recorded there -> nothing is written again; a
different command there -> NonDeterminismError; a replay-only executor past its log ->
EndOfHistory. Live, the ValueSet event carries its projection row (RunLog.append(value=...)),
committed with it, so a reader sees the value exactly when the log holds it.

on_query takes no position: registering is invisible to the log, hence deterministic by
construction; the handlers live on the executor for durable.interact._query to call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from durable._codec import encode_value
from durable._errors import NonDeterminismError
from durable._events import ValueSet
from durable._runlog import RunLog
from durable._state import RunState
from durable._state_values import set_event_label
from durable.runtime._guard import guard_command
from durable.runtime._stops import EndOfHistory, ExecutionStopped

MAX_KEY = 255  # the values table's key column


class ValuesHost(Protocol):
    """The executor as these commands see it (RunExecutor)."""

    state: RunState
    log: RunLog | None
    stopping: bool
    _ending: bool
    _next_pos: int
    queries: dict[str, Callable[..., Any]]

    def recorded_at(self, pos: int) -> str | None: ...

    def _divergence(
        self, pos: int, recorded: str, requested: str, depth: int = 3
    ) -> NonDeterminismError: ...


def check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_KEY or "\x00" in name:
        raise ValueError(
            f"{what} must be a non-empty string of at most {MAX_KEY} characters without NUL; "
            f"got {name!r:.80}"
        )
    return name


def set_event(ex: ValuesHost, key: str, value: Any) -> None:
    label = set_event_label(key) if isinstance(key, str) else "ctx.set_event()"
    guard_command(label)
    check_name("ctx.set_event() key", key)
    if ex.stopping or ex._ending:
        raise ExecutionStopped()
    pos = ex._next_pos
    ex._next_pos = pos + 1
    recorded = ex.state.commands.get(pos)
    if recorded is not None:
        if recorded != label:
            raise ex._divergence(pos, recorded, label, depth=4)
        return  # recorded: its value is in the log and the values table already
    other = ex.recorded_at(pos)
    if other is not None:
        raise ex._divergence(pos, other, label, depth=4)
    if ex.log is None:
        raise EndOfHistory()
    raw = encode_value(value, f"the value of {label}")
    ex.log.append(ValueSet(pos=pos, key=key, value=msgspec.Raw(raw)), value=(key, raw))


def on_query(ex: ValuesHost, name: str, fn: Callable[..., Any]) -> None:
    check_name("ctx.on_query() name", name)
    if not callable(fn):
        raise TypeError(f"ctx.on_query({name!r}, fn): fn must be callable, got {fn!r:.80}")
    ex.queries[name] = fn  # re-registering replaces: the latest handler answers
