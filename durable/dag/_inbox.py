"""What a DAG run takes from its inbox besides a cancellation (which stops it: DagExecutor):
a queued step's child run ending, an update (refused: DAG runs have no handlers), a signal
(recorded; DAG steps wait for none)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from durable._events import SignalReceived
from durable.runtime._updates import refuse_update
from storage import UPDATE_ITEM_KIND, InboxItem

from ._queued import child_ended

if TYPE_CHECKING:
    from ._run import DagExecutor


def record_item(ex: DagExecutor, item: InboxItem) -> None:
    state = ex.state
    if item.kind == "child":
        child_ended(ex, item)
    elif item.kind == UPDATE_ITEM_KIND:
        why = f"run {state.run_id!r} is a DAG run ({state.workflow!r}): it takes no updates"
        refuse_update(ex.log, item, why)
    else:
        signal = SignalReceived(name=item.name, payload=msgspec.Raw(item.payload), inbox_id=item.id)
        ex.log.append(signal, consume=item.id)
