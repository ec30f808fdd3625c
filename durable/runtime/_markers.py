"""Markers: commands whose outcome is a value produced once and recorded (ctx.now(),
ctx.uuid4(), ctx.random(), ctx.patched()), replayed from the log afterwards.

Kept out of _executor so that the executor stays one screenful of commands; these functions
take the executor and use its position counter, log and divergence reporting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from durable._codec import decode_value, encode_value
from durable._errors import NonDeterminismError
from durable._events import MarkerRecorded
from durable._runlog import RunLog
from durable._state import RunState
from durable.runtime._stops import EndOfHistory, ExecutionStopped


class MarkerHost(Protocol):
    """The executor as these commands see it (RunExecutor; a Protocol keeps imports one-way)."""

    state: RunState
    log: RunLog | None
    stopping: bool
    _ending: bool
    _next_pos: int
    _patches: dict[str, bool]

    @property
    def is_replaying(self) -> bool: ...

    def recorded_at(self, pos: int) -> str | None: ...

    def _divergence(
        self, pos: int, recorded: str, requested: str, depth: int = 3
    ) -> NonDeterminismError: ...


def marker(ex: MarkerHost, kind: str, produce: Callable[[], Any]) -> Any:
    if ex.stopping or ex._ending:
        raise ExecutionStopped()
    pos = ex._next_pos
    ex._next_pos = pos + 1
    recorded = ex.state.markers.get(pos)
    if recorded is not None:
        if recorded.kind != kind:
            raise ex._divergence(pos, f"ctx.{recorded.kind}()", f"ctx.{kind}()", depth=4)
        return decode_value(recorded.value)
    other = ex.recorded_at(pos)
    if other is not None:
        raise ex._divergence(pos, other, f"ctx.{kind}()", depth=4)
    if ex.log is None:
        raise EndOfHistory()
    value = produce()
    raw = msgspec.Raw(encode_value(value, f"ctx.{kind}()"))
    ex.log.append(MarkerRecorded(pos=pos, kind=kind, value=raw))
    return value


def patched(ex: MarkerHost, change_id: str, deprecated: bool) -> bool:
    """See Context.patched(): a patch marker, taken once per change id and run."""
    known = ex._patches.get(change_id)
    if known is not None:
        return known
    pos = ex._next_pos
    rec = ex.state.markers.get(pos)
    if rec is not None and rec.kind == "patch" and decode_value(rec.value) == change_id:
        ex._next_pos = pos + 1
        ex._patches[change_id] = True
        return True
    if deprecated or ex.is_replaying:
        # A run that passed this point before the patch existed: the old path, and no
        # position taken, so the positions after it still line up with its log.
        ex._patches[change_id] = False
        return False
    if ex.log is None:
        raise EndOfHistory()
    if ex.stopping or ex._ending:
        raise ExecutionStopped()
    ex._next_pos = pos + 1
    raw = msgspec.Raw(encode_value(change_id, "a patch id"))
    ex.log.append(MarkerRecorded(pos=pos, kind="patch", value=raw))
    ex._patches[change_id] = True
    return True
