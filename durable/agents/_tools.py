"""App steps as agent tools."""

from __future__ import annotations

import functools
import inspect
from typing import Any

from pydantic_ai import Tool

from durable.runtime._registry import Step


def step_tool(
    step: Step[..., Any], *, name: str | None = None, description: str | None = None
) -> Tool[Any]:
    """An app step (`@app.step`) as a Pydantic AI tool: `Agent(..., tools=[step_tool(charge)])`.

    Inside a workflow the call is the step itself, recorded under the step's own name with its
    own RetryPolicy, timeout and max_crashes; the tool gets no step of its own around it
    (`metadata={"durable": False}`), so it is not recorded twice. The tool's schema and
    description come from the step function's signature and docstring; its arguments and result
    must be storable like any step's. Outside a workflow it is a plain call of the function.
    """
    if not isinstance(step, Step):
        raise TypeError(f"step_tool() takes an app step (@app.step), got {step!r}")

    @functools.wraps(step.fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        value = step(*args, **kwargs)
        return await value if inspect.isawaitable(value) else value

    return Tool(
        call,
        takes_ctx=False,
        name=name or step.definition.name,
        description=description,
        metadata={"durable": False},
    )
