# The agent workflow document's example "ParallelStep" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/parallel_step.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import database_tool, email_tool, manager_agent

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import ParallelStep, ToolStep, AgentStep

# Create steps for parallel execution
create_record_step = ToolStep("create_record", database_tool, {"table": "customers"})
send_email_step = ToolStep("send_email", email_tool, {"template": "welcome"})
assign_manager_step = AgentStep("assign_manager", manager_agent, "Assign account manager")

# Create parallel step
parallel_step = ParallelStep(
    step_id="customer_setup",
    steps=[create_record_step, send_email_step, assign_manager_step],
    wait_for_all=True  # Wait for all steps to complete
)

# Configure timeout
parallel_step.with_timeout(120)

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

result = await Workflow("customer_setup").add_step(parallel_step).execute(WorkflowContext())
print(f"{result.status}: {sorted(result.steps[0].output)}")
