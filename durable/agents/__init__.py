"""Durable Pydantic AI agents (the `agents` extra: `pip install 'durable[agents]'`).

- `_records`    what the steps record: model responses and token usage, tool results, inputs.
- `_tools`      `step_tool`: an app step as an agent tool, recorded as itself.
- `_steps`      Pydantic AI's durable operations run as steps of the current run.
- `_approvals`  tool calls needing approval: recorded, then a durable wait for each decision.
- `_capability` `Durability`, the Pydantic AI capability routing an agent's model requests and
                tool calls through those steps inside a workflow.
- `_agent`      `DurableAgent`, any agent made durable (what `App.agent` returns).

Each imports only those listed before it. Importing `durable` or `sdk` does not import this
package (nor Pydantic AI): `sdk.DurableAgent` and `App.agent` load it when first used.
"""

from durable.agents._agent import DurableAgent
from durable.agents._capability import DEFAULT_MODEL_RETRY, DEFAULT_TOOL_RETRY, Durability
from durable.agents._tools import step_tool

__all__ = ["DEFAULT_MODEL_RETRY", "DEFAULT_TOOL_RETRY", "Durability", "DurableAgent", "step_tool"]
