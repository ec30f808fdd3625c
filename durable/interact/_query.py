"""Answering app.query(run_id, name, *args): replay the run here, then ask its handler.

1. The run's log is read and folded; its workflow comes from this process's registry (so the
   process must have the app's code: the API server's --app, the CLI's --app).
2. A replay-only executor (log=None) re-executes the workflow up to the end of its log (or to
   its return): whatever ctx.on_query registered on the way is in `executor.queries`.
3. The handler is called in a copy of the workflow task's context (the workflow's context
   variables, the executor as current_executor), read-only (durable.runtime._guard): any
   durable command it issues raises QueryError naming the command.

Nothing is written: a replay-only executor has no log. Why not ask the worker holding the
run: there is no worker-to-worker channel (and none is needed), the live executor may hold
outcomes not yet durable (a crash could take back what the answer showed), and a handler
that mutates the workflow's variables cannot make a live run diverge from its replay.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from durable._codec import encode_value
from durable._errors import QueryError, RunNotFoundError, UnknownQueryError, UnknownWorkflowError
from durable._events import decode_record
from durable._ids import check_lookup
from durable._state import fold
from durable.runtime._executor import RunExecutor
from durable.runtime._guard import ReadOnly, read_only

if TYPE_CHECKING:
    from durable._client import Client

QUERY_TIMEOUT = 10.0  # seconds for the replay, then for an async handler


async def answer_query(
    client: Client,
    run_id: str,
    name: str,
    args: Sequence[Any] = (),
    *,
    timeout: float = QUERY_TIMEOUT,
) -> Any:
    check_lookup("run id", run_id)
    check_lookup("query name", name)
    records = await client.store.read_events(run_id)
    if not records:
        raise RunNotFoundError(run_id)
    state = fold(run_id, [decode_record(r) for r in records])
    wf = client.registry.get(state.workflow, state.version)
    if state.kind == "dag" or (wf is not None and wf.dag is not None):
        raise QueryError(
            run_id,
            name,
            f"run {run_id!r} is a DAG run ({state.workflow!r}): DAG runs have no query "
            "handlers; read its steps' results with app.get_run() or `durable runs show`",
        )
    if wf is None:
        raise UnknownWorkflowError(state.workflow, state.version, client.registry.names())
    executor = RunExecutor(state, wf, None, registry=client.registry)
    replay = executor.start()
    try:
        await asyncio.wait_for(asyncio.shield(replay), timeout)
    except TimeoutError:
        executor.abort()
        raise QueryError(
            run_id,
            name,
            f"the replay of run {run_id!r} did not reach the end of its log within "
            f"{timeout:g} s: its workflow awaits something that is not durable",
        ) from None
    if executor.fatal is not None:
        raise executor.fatal  # the code changed under the run: its answer would be wrong
    handler = executor.queries.get(name)
    if handler is None:
        raise UnknownQueryError(run_id, name, sorted(executor.queries))
    assert executor.context is not None
    context = executor.context.copy()
    guard = ReadOnly(run_id, name)
    context.run(read_only.set, guard)
    try:
        result = context.run(handler, *args)
        if inspect.isawaitable(result):
            task = asyncio.get_running_loop().create_task(_awaited(result), context=context)
            result = await asyncio.wait_for(task, timeout)
    except QueryError:
        raise
    except Exception as exc:
        if guard.refused is not None:
            raise guard.refused from exc
        raise QueryError(
            run_id, name, f"query handler {name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    if guard.refused is not None:  # caught by the handler: its answer is not to be trusted
        raise guard.refused
    encode_value(result, f"the result of query {name!r}")  # what callers elsewhere can take
    return result


async def _awaited(aw: Awaitable[Any]) -> Any:
    return await aw
