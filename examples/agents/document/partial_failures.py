# The agent workflow document's example "Best Practices: 2. Handle Partial Failures" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/partial_failures.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from sdk.workflows import ParallelStep, ToolStep

# -- the document's code -----------------------------------------------------------------------
# Parallel step with failure handling
robust_parallel = ParallelStep("multi_system_update") \
    .add_branch(ToolStep("update_crm").with_retry(max_attempts=3)) \
    .add_branch(ToolStep("update_billing").with_retry(max_attempts=3)) \
    .add_branch(ToolStep("update_analytics").with_retry(max_attempts=2)) \
    .with_failure_policy("continue_on_partial_failure") \
    .with_minimum_success_count(2)  # Require at least 2 successes

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

result = await Workflow("multi_system").add_step(robust_parallel).execute(WorkflowContext())
step = result.steps[0]
print(f"{result.status}: {step.status}, {step.handling['succeeded']} of 3 succeeded")
