"""/executions/{id}/histories: the chain of a run's histories (ctx.continue_as_new()), a read
(a read token suffices when tokens are configured)."""

from __future__ import annotations

from litestar import get
from litestar.exceptions import NotFoundException

from durable._errors import RunNotFoundError

from ._executions import RunId
from ._responses import errors
from ._schemas import HistoryBody, HistoryList
from ._services import Services


@get(
    "/executions/{run_id:str}/histories",
    summary="The chain of an execution's histories (continue-as-new)",
    responses=errors(404),
)
async def list_histories(services: Services, run_id: str = RunId) -> HistoryList:
    """Oldest first; one per ctx.continue_as_new() plus the first. `retained` says whether a
    history's events are still stored (the current one and the one before it are)."""
    try:
        chain = await services.client.histories(run_id)
    except RunNotFoundError:
        raise NotFoundException(f"no execution with id {run_id!r}") from None
    return HistoryList(
        execution_id=run_id,
        histories=[
            HistoryBody(
                generation=h.generation,
                first_event=h.first_seq,
                last_event=h.last_seq,
                start_time=int(h.started_at.timestamp() * 1000),
                end_time=None if h.ended_at is None else int(h.ended_at.timestamp() * 1000),
                retained=h.retained,
            )
            for h in chain
        ],
    )
