"""What an agent's steps record: inputs and results as JSON-shaped values (dicts, lists,
strings, numbers) made by Pydantic AI's own type adapters, stored msgpack-encoded like every
step result. Never pickle.

A model request's step result is an envelope:

    {"usage": {"requests": 1, "input_tokens": 12, "output_tokens": 30, ...},  # its tokens
     "model_name": "gpt-4o",
     "response": <the ModelResponse, as Pydantic AI dumps it>}

so token totals per step and per run can be read off the log without knowing Pydantic AI's
message schema. Every other operation records Pydantic AI's payload as it is (a tool call:
its CallToolResult, the tool's return value or the control-flow outcome it raised).
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.durable_exec import DurableOperationId, ModelRequestId
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest
from pydantic_core import to_jsonable_python


def wrap_result(operation_id: DurableOperationId, payload: object) -> object:
    if not isinstance(operation_id, ModelRequestId):
        return payload
    response = _response_of(payload)
    usage = response.get("usage") if response is not None else None
    # Usage first: one-line views of the result (`durable runs show`) show the tokens.
    return {
        "usage": _token_counts(usage),
        "model_name": response.get("model_name") if response is not None else None,
        "response": payload,
    }


def unwrap_result(operation_id: DurableOperationId, recorded: object) -> object:
    if not isinstance(operation_id, ModelRequestId):
        return recorded
    assert isinstance(recorded, dict), f"a model request step recorded {type(recorded)}"
    return recorded["response"]


def _response_of(payload: object) -> dict[str, Any] | None:
    """The ModelResponse in a model step's payload: the payload itself, or (a streamed
    request) the response it carries."""
    if isinstance(payload, dict):
        if payload.get("kind") == "response":
            return payload
        for value in payload.values():
            if isinstance(value, dict) and value.get("kind") == "response":
                return value
    return None


def _token_counts(usage: object) -> dict[str, int]:
    """The request's integer token counts (zeros left out), plus requests=1."""
    counts: dict[str, int] = {"requests": 1}
    if isinstance(usage, dict):
        for key, value in usage.items():
            if isinstance(value, int) and not isinstance(value, bool) and value:
                counts[key] = value
    return counts


def model_step_input(cache_key: tuple[object, ...]) -> object:
    """A model request's input as recorded: the model id, how many messages the request
    carries, and the newest request (the prompt or the tool results sent back) rather than the
    whole history again, which the earlier steps of the run already hold."""
    model_id, messages = cache_key[0], cache_key[1]
    latest: object = None
    count = 0
    if isinstance(messages, list):
        count = len(messages)
        requests = [m for m in messages if isinstance(m, ModelRequest)]
        if requests:
            latest = ModelMessagesTypeAdapter.dump_python([requests[-1]], mode="json")[0]
    return {"model_id": model_id, "messages": count, "request": latest}


def tool_step_input(cache_key: tuple[object, ...]) -> object:
    name, args = cache_key[0], cache_key[1]
    return {"tool": name, "args": to_jsonable_python(args, fallback=repr)}
