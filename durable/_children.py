"""The child lifecycle: what a run's end, or its cancellation, does to its unfinished children.

A child run is started with a parent-close policy, recorded in its ChildStarted:
- "cancel" (the default): when the parent ends, however it ends (succeeded, failed, timed
  out, cancelled), a child whose end it has not recorded is asked to cancel. The request goes
  to the child's inbox in the same commit as the parent's final event (or its CancelRequested),
  so a crash right after the parent ended cannot leave the child running. A cancelled child
  cancels its own children the same way: grandchildren follow.
- "abandon": the child outlives its parent; neither the parent's end nor its cancellation
  reaches it.

A child whose creation is in flight when the parent's cancellation is recorded is not known to
that commit: it is asked to cancel in the commit that records its start (ChildStarted with
cancel_asked). One started after it (a compensation's child run) is not: it runs, and the
parent's end cancels it only if it is still running then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from storage import NewInboxItem

if TYPE_CHECKING:
    from durable._state import RunState

ParentClose = Literal["cancel", "abandon"]


def check_parent_close(value: object) -> ParentClose:
    """`parent_close` as given to ctx.start_child()/run_child(), or a ValueError saying why."""
    if value == "cancel" or value == "abandon":
        return value
    raise ValueError(f"parent_close must be 'cancel' or 'abandon', not {value!r}")


def children_to_cancel(state: RunState) -> list[str]:
    """The run's children a cancellation or its end must cancel: started with
    parent_close="cancel", whose end the run has not recorded, and not already asked by the
    run's cancellation (CancelRequested)."""
    return [
        w.child_run_id
        for _, w in sorted(state.waits.items())
        if w.kind == "child"
        and w.parent_close == "cancel"
        and w.child_run_id not in state.children
        and w.child_run_id not in state.children_asked
    ]


def cancel_request(child: str, reason: str, now: float) -> NewInboxItem:
    """A request asking the run `child` to cancel, from its parent."""
    return NewInboxItem(child, "cancel", "cancel", reason.encode(), now, dedupe_key="cancel")


def cancel_requests(state: RunState, reason: str, now: float) -> tuple[NewInboxItem, ...]:
    """Cancel requests for the children_to_cancel, to send with the run's own event. One
    pending request per child at most (dedupe key "cancel", as Client.cancel's)."""
    return tuple(cancel_request(child, reason, now) for child in children_to_cancel(state))
