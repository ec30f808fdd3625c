# The agent workflow document's example "Best Practices: 3. Use Timeouts Appropriately" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/timeouts.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from sdk.workflows import AgentStep, ToolStep, WorkflowBuilder

# -- the document's code -----------------------------------------------------------------------
# Different timeouts for different step types
workflow = WorkflowBuilder("data_processing") \
    .add_step(
        ToolStep("quick_validation")
        .with_timeout(10)  # Fast operation
    ) \
    .add_step(
        ToolStep("heavy_computation")
        .with_timeout(300)  # Allow 5 minutes
    ) \
    .add_step(
        AgentStep("human_review")
        .with_timeout(3600)  # Allow 1 hour
    ) \
    .build()

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import WorkflowContext

result = await workflow.execute(WorkflowContext())
print(f"{result.status}: {[(s.step_id, s.status) for s in result.steps]}")
