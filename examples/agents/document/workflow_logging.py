# The agent workflow document's example "Best Practices: 4. Implement Proper Logging" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/workflow_logging.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import logger
from sdk.workflows import WorkflowBuilder

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import WorkflowLogger

# Custom logger
class DetailedWorkflowLogger(WorkflowLogger):
    def log_step_start(self, step_name, state):
        logger.info(f"Starting step: {step_name}", extra={
            "workflow_id": state.workflow_id,
            "step_name": step_name,
            "state_keys": list(state.data.keys())
        })
    
    def log_step_complete(self, step_name, result, duration_ms):
        logger.info(f"Completed step: {step_name} in {duration_ms}ms", extra={
            "step_name": step_name,
            "duration_ms": duration_ms,
            "success": result.success
        })

# Use custom logger
workflow = WorkflowBuilder("logged_workflow") \
    .with_logger(DetailedWorkflowLogger()) \
    .build()

# -- not in the document: running it -----------------------------------------------------------
import logging

from sdk.workflows import ToolStep, WorkflowContext

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
workflow.add_step(ToolStep("quick_validation"))
result = await workflow.execute(WorkflowContext())
print(f"{result.status}: {result.steps_completed}/{result.total_steps} steps")
