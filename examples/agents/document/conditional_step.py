# The agent workflow document's example "ConditionalStep" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/conditional_step.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import auto_approve_tool, high_value_agent

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import ConditionalStep, AgentStep, ToolStep

# Create conditional step
conditional_step = ConditionalStep(
    step_id="payment_check",
    condition=lambda context: context.variables.get("payment_amount", 0) > 1000,
    true_step=AgentStep("approval", high_value_agent, "Review high-value transaction"),
    false_step=ToolStep("auto_approve", auto_approve_tool, {"auto_approve": True})
)

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

workflow = Workflow("payments").add_step(conditional_step)
for amount in (5000, 50):
    context = WorkflowContext(workflow_id=f"payment-{amount}", variables={"payment_amount": amount})
    result = await workflow.execute(context)
    ran = [s.step_id for s in result.all_steps]
    print(f"amount {amount}: {result.status}, ran {ran}")
