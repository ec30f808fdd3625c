"""Human approval of tool calls, inside the agent run: what the durable capability answers
Pydantic AI's `handle_deferred_tool_calls` hook with.

The calls to approve are recorded in one step (`<agent>.approval_request`, its result listing
each call's id, tool name and arguments: see durable._approvals), then each call waits for its
decision, a signal: a durable wait, so the run is parked meanwhile (no worker holds it) and a
crash or a restart changes nothing. The decisions go back to the same agent run as
DeferredToolResults: an approved call runs its tool (a step of its own), a denied one tells
the model why (ToolDenied). On replay the step and the waits answer from the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from pydantic_ai.messages import ToolCallPart
from pydantic_ai.tools import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
from pydantic_core import to_jsonable_python

from durable._approvals import DENIED_BY_DEFAULT, REQUEST_KIND, interpret, signal_name
from durable.runtime._context import Context, WorkflowRuntime, current_step
from durable.runtime._registry import NO_RETRY, StepDef


def handles_deferred_itself(output_type: Any) -> bool:
    """Whether an output type lets the run end with DeferredToolRequests (`[str,
    DeferredToolRequests]`, a union...): the workflow then handles approvals itself."""
    if output_type is DeferredToolRequests:
        return True
    if isinstance(output_type, Sequence) and not isinstance(output_type, str):
        return any(handles_deferred_itself(t) for t in output_type)
    return any(handles_deferred_itself(t) for t in get_args(output_type))


def _request(call: ToolCallPart) -> dict[str, Any]:
    try:
        args: Any = call.args_as_dict()
    except Exception:  # arguments the model got wrong: shown as it sent them
        args = call.args
    return {
        "tool_call_id": call.tool_call_id,
        "tool_name": call.tool_name,
        "args": to_jsonable_python(args, fallback=repr),
    }


async def decide_approvals(
    executor: WorkflowRuntime, agent_name: str, calls: Sequence[ToolCallPart], max_crashes: int
) -> DeferredToolResults:
    """Record the calls, wait (durably) for a decision on each, in order, and return them."""
    requests = [_request(call) for call in calls]

    async def record(_input: object) -> dict[str, Any]:
        # The position names the decisions' signals: unique in the run, and recorded.
        position = current_step().position
        return {
            "kind": REQUEST_KIND,
            "agent": agent_name,
            "position": position,
            "requests": requests,
        }

    step = StepDef(
        name=f"{agent_name}.approval_request",
        fn=record,
        is_async=True,
        retry=NO_RETRY,
        timeout=None,
        return_type=Any,
        max_crashes=max_crashes,
    )
    summary = {"tools": [r["tool_name"] for r in requests]}
    recorded = await executor.call_step(step, (summary,), {})
    ctx = Context(executor)
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    for index, request in enumerate(recorded["requests"]):
        payload = await ctx.wait_for_signal(signal_name(recorded["position"], index))
        approved, reason = interpret(payload)
        approvals[request["tool_call_id"]] = (
            True if approved else ToolDenied(reason or DENIED_BY_DEFAULT)
        )
    return DeferredToolResults(approvals=approvals)
