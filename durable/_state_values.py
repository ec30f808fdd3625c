"""The fold of the events workflows use to talk to the outside (issue 17): kept out of
durable._state so that file stays small; apply() hands it every event it does not know."""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable._events import AnyEvent, ValueSet

if TYPE_CHECKING:
    from durable._state import RunState


def set_event_label(key: str) -> str:
    """How divergence messages and recorded_at() name a ctx.set_event() command."""
    return f"ctx.set_event({key!r})"


def apply_talk(state: RunState, seq: int, event: AnyEvent) -> None:
    if isinstance(event, ValueSet):
        state.commands[event.pos] = set_event_label(event.key)
