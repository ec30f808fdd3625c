# The agent workflow document's example "Workflow Definition" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/workflow_definition.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import account_tool, welcome_agent

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import Workflow, WorkflowBuilder, WorkflowContext
from sdk.workflows import AgentStep, ToolStep, ConditionalStep, ParallelStep
from sdk.workflows import Agent, Tool

# Create a simple workflow
workflow = Workflow(
    workflow_id="customer_onboarding",
    name="Customer Onboarding Process",
    description="Complete customer onboarding workflow"
)

# Add steps to workflow
agent_step = AgentStep("welcome_step", welcome_agent, "Welcome new customer")
workflow.add_step(agent_step)

# Or use the builder pattern
workflow = WorkflowBuilder("customer_onboarding", "Customer Onboarding") \
    .add_agent_step("welcome", welcome_agent, "Welcome new customer") \
    .add_tool_step("create_account", account_tool, {"type": "standard"}) \
    .build()
