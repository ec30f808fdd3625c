"""/executions/{id}/approvals: the tool calls of a run's durable agents that need a human's
decision, and the decisions (docs/agents.md). A decision is written to the run's inbox, exactly
once: the worker running the run takes it into the log and the agent goes on."""

from __future__ import annotations

from litestar import get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_409_CONFLICT

from durable._approvals import Approval
from durable._errors import ApprovalError

from ._executions import RunId
from ._responses import WITH_BODY, errors
from ._schemas import ApprovalBody, ApprovalList, DecisionRequest
from ._services import Services
from ._shapes import ms

CallId = Parameter(
    min_length=1,
    max_length=255,
    pattern=r"^[^\x00]+$",
    description="The tool call's id (toolCallId in the list).",
)


def approval_body(a: Approval) -> ApprovalBody:
    return ApprovalBody(
        tool_call_id=a.tool_call_id,
        tool_name=a.tool_name,
        args=a.args,
        agent=a.agent,
        requested_at=ms(a.requested_at.timestamp()) or 0,
        status=a.status,
        decided=a.decided,
        reason=a.reason,
        decided_at=ms(a.decided_at.timestamp()) if a.decided_at is not None else None,
        position=a.position,
        signal=a.signal,
    )


@get(
    "/executions/{run_id:str}/approvals",
    summary="The tool calls waiting for (or given) a human's approval",
    responses=errors(404),
)
async def list_approvals(services: Services, run_id: str = RunId) -> ApprovalList:
    """In the order the agents asked: each `pending`, `approved` or `denied` (with the
    reason given)."""
    found = await services.client.approvals(run_id)
    return ApprovalList(approvals=[approval_body(a) for a in found])


@post(
    "/executions/{run_id:str}/approvals/{tool_call_id:str}",
    status_code=HTTP_202_ACCEPTED,
    summary="Approve or deny a tool call",
    responses=errors(404, 409, *WITH_BODY),
)
async def decide_approval(
    services: Services,
    data: DecisionRequest,
    run_id: str = RunId,
    tool_call_id: str = CallId,
) -> ApprovalBody:
    """`{"approved": true}` runs the tool; `{"approved": false, "reason": "..."}` tells the
    model why not. 409 if the call is unknown or already decided, or the run has ended:
    nothing is sent then."""
    try:
        decided = await services.client.decide(
            run_id, tool_call_id, approved=data.approved, reason=data.reason
        )
    except ApprovalError as exc:
        raise ClientException(str(exc), status_code=HTTP_409_CONFLICT) from None
    return approval_body(decided)
