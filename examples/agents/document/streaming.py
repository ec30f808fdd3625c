# The agent workflow document's example "Streaming Execution" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/streaming.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from sdk.workflows import WorkflowContext
from workflow_definition import workflow

context = WorkflowContext(workflow_id="onboarding_stream")

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import execute_workflow_stream

# Stream workflow execution
async for step_result in execute_workflow_stream(workflow, context):
    print(f"Step {step_result.step_id}: {step_result.status}")
    if step_result.is_success:
        print(f"  Output: {step_result.output}")
    elif step_result.is_failure:
        print(f"  Error: {step_result.error}")
    print(f"  Execution time: {step_result.execution_time_ms}ms")
