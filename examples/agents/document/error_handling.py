# The agent workflow document's example "Error Handling and Recovery" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/error_handling.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import payment_tool, review_agent

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import Workflow, AgentStep, ToolStep

# Create workflow with error handling
workflow = Workflow("payment_processing", "Payment Processing")

# Add error handler for specific step
def payment_error_handler(step_result, context):
    if "timeout" in step_result.error:
        # Return a retry step
        return ToolStep("retry_payment", payment_tool, {"retry": True})
    else:
        # Return a fallback step
        return AgentStep("manual_review", review_agent, "Manual payment review required")

workflow.add_error_handler("process_payment", payment_error_handler)

# Configure step-level retry
payment_step = ToolStep("process_payment", payment_tool, {"amount": 100})
payment_step.with_retry(max_retries=3).with_timeout(30)
workflow.add_step(payment_step)

# -- not in the document: running it -----------------------------------------------------------
import os

from sdk.workflows import WorkflowContext

os.environ.setdefault("DURABLE_EXAMPLE_FAIL", "payment_gateway")  # it times out: the handler
result = await workflow.execute(WorkflowContext(workflow_id="payment-1"))
step = result.steps[0]
print(f"{result.status}: {step.step_id} {step.status} {step.output} {step.handling}")
