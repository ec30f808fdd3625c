# The agent workflow document's example "Workflow Execution" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/workflow_execution.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from workflow_definition import workflow

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

# Create execution context
context = WorkflowContext(
    workflow_id="onboarding_001",
    user_context={"customer_id": "cust_12345"},
    variables={
        "customer_email": "john@example.com",
        "verification_status": "pending"
    },
    metadata={
        "started_by": "system",
        "priority": "high"
    }
)

# Execute workflow
result = await workflow.execute(context)

print(f"Workflow Status: {result.status}")
print(f"Execution Time: {result.total_execution_time_ms}ms")
print(f"Steps Completed: {len(result.steps)}")
print(f"Success Rate: {result.success_rate}%")
