"""Read-only handlers: while a query handler runs (durable.interact._query), every durable
command (a step call, ctx.sleep, a signal wait, a child run, ctx.now()/uuid4()/random()/
patched(), ctx.set_event...) is refused with a QueryError naming the command.

The mode is a context variable set only in the handler's copy of the workflow task's context,
so the workflow's own code (replayed before the handler runs) is never affected. A refusal is
also remembered on the guard: a handler that catches the QueryError and returns anyway still
fails (its answer would be built on a command that did not happen).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from durable._errors import QueryError


@dataclass(slots=True)
class ReadOnly:
    run_id: str
    name: str  # the query's
    refused: QueryError | None = None


read_only: contextvars.ContextVar[ReadOnly | None] = contextvars.ContextVar(
    "durable_read_only", default=None
)


def guard_command(what: str, name: str | None = None) -> None:
    """Called first by every command entry point: `what` names the command as the user wrote
    it (`ctx.sleep()`...), followed by `name`'s repr if given (`step 'charge'`: formatted only
    when refused, as a step call is on the replay's hot path)."""
    mode = read_only.get()
    if mode is None:
        return
    if name is not None:
        what = f"{what} {name!r}"
    err = QueryError(
        mode.run_id,
        mode.name,
        f"query handler {mode.name!r} called {what}: query handlers are read-only (no "
        "steps, sleeps, signal waits, child runs, ctx.now()/uuid4()/random()/patched() nor "
        "ctx.set_event); read the workflow's variables instead, and change the run with a "
        "signal",
    )
    if mode.refused is None:
        mode.refused = err
    raise err
