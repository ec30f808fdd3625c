# The agent workflow document's example "State Management" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/state_management.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from workflow_definition import workflow

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import WorkflowContext

# Create context with initial state
context = WorkflowContext(
    workflow_id="customer_onboarding",
    user_context={"customer_id": "12345"},
    variables={
        "customer_tier": "premium",
        "verification_status": "pending"
    }
)

# Context is automatically updated with step results
# Access updated context after execution
result = await workflow.execute(context)
final_context = result.context

print(f"Final variables: {final_context.variables}")
print(f"Step results: {[step.output for step in result.steps]}")
