"""The agent workflow document's builder (seed 004), run durably.

- `_context`     WorkflowContext: what lambdas see (a Mapping over the variables) and what a
                 run carries as its input.
- `_results`     StepResult and WorkflowResult.
- `_steps`       AgentStep, ToolStep, ConditionalStep, ParallelStep, LoopStep: declarations.
- `_resolve`     where a step finds its tool or agent (objects, or names in a catalog).
- `_fingerprint` what versions a workflow whose lambdas can't be stored.
- `_plan`        a workflow ready to run (steps resolved, checked), WorkflowLogger.
- `_parallel`    a ParallelStep's branches, raced durably.
- `_run`         the interpreter: the durable workflow function walking the steps.
- `_report`      StepResults and WorkflowResult read back from a run's log.
- `_workflow`    Workflow and WorkflowBuilder (registering one runs it through `_run`).

Each imports only those listed before it (tests/test_layers.py checks it). The user-facing
engine (WorkflowEngine, execute_workflow_stream) is in sdk.workflows, on an App. Importing
this package does not import Pydantic AI: an AgentStep loads durable.agents when its workflow
is registered.
"""

from durable.flow._context import WorkflowContext
from durable.flow._plan import WorkflowLogger
from durable.flow._resolve import register_agent, register_tool
from durable.flow._results import StepResult, WorkflowResult
from durable.flow._run import StepError, WorkflowFailedError
from durable.flow._steps import (
    AgentStep,
    ConditionalStep,
    LoopStep,
    ParallelStep,
    ToolStep,
    WorkflowStep,
)
from durable.flow._workflow import Workflow, WorkflowBuilder

__all__ = [
    "AgentStep",
    "ConditionalStep",
    "LoopStep",
    "ParallelStep",
    "StepError",
    "StepResult",
    "ToolStep",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowContext",
    "WorkflowFailedError",
    "WorkflowLogger",
    "WorkflowResult",
    "WorkflowStep",
    "register_agent",
    "register_tool",
]
