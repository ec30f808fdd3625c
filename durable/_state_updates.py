"""The fold of updates (UpdateAccepted, UpdateCompleted) into the run's state: its own module,
called by one line of durable._state.apply."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from durable._errors import ErrorInfo
from durable._events import UpdateAccepted, UpdateCompleted
from storage import UpdateChange


@dataclass(slots=True)
class UpdateState:
    """An update the run accepted at `pos` (its handler's start), done once completed."""

    update_id: str
    pos: int
    name: str
    args: msgspec.Raw
    accept_seq: int
    done_seq: int = 0
    result: msgspec.Raw | None = None
    error: ErrorInfo | None = None

    @property
    def done(self) -> bool:
        return self.done_seq != 0

    def describe(self) -> str:
        return f"update {self.name!r} ({self.update_id})"


def apply_update(
    updates: dict[str, UpdateState],
    commands: dict[int, str],
    inbox_ids: set[int],
    seq: int,
    event: UpdateAccepted | UpdateCompleted,
) -> None:
    if isinstance(event, UpdateAccepted):
        updates[event.update_id] = UpdateState(
            event.update_id, event.pos, event.name, event.args, accept_seq=seq
        )
        commands[event.pos] = f"the acceptance of update {event.name!r}"
        if event.inbox_id:
            inbox_ids.add(event.inbox_id)
        return
    found = updates.get(event.update_id)
    if found is not None:
        found.done_seq = seq
        found.result = event.result
        found.error = event.error


def closing_changes(
    updates: dict[str, UpdateState], status: str, now: float
) -> tuple[UpdateChange, ...]:
    """The run ends: its accepted updates whose handler did not finish fail, on their rows, in
    the final commit (their callers get UpdateFailed, type durable.RunEnded)."""
    open_ = [u for u in updates.values() if not u.done]
    if not open_:
        return ()
    info = ErrorInfo(
        type="durable.RunEnded",
        message=f"the run ended ({status}) before the update's handler finished",
    )
    error = msgspec.msgpack.encode(info)
    return tuple(UpdateChange(u.update_id, "failed", error=error, at=now) for u in open_)
