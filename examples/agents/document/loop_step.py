# The agent workflow document's example "LoopStep" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/loop_step.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import processing_tool

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import LoopStep, ToolStep

# Create step to execute in loop
process_step = ToolStep("process_item", processing_tool, {})

# Create loop step with condition
loop_step = LoopStep(
    step_id="process_orders",
    step=process_step,
    condition=lambda context, iteration: iteration < len(context.variables.get("orders", [])),
    max_iterations=10
)

# Configure timeout
loop_step.with_timeout(300)

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

orders = ["ORD-1", "ORD-2", "ORD-3"]
context = WorkflowContext(workflow_id="orders-batch", variables={"orders": orders})
result = await Workflow("order_batch").add_step(loop_step).execute(context)
print(f"{result.status}: {result.steps[0].output}")
