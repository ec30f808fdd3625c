# The agent workflow document's example "ToolStep" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/tool_step.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import send_email

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import ToolStep
from sdk.workflows import Tool

# Create a tool
email_tool = Tool(
    name="send_email",
    description="Send email to customer",
    function=send_email,  # ... tool implementation
)

# Create tool step
tool_step = ToolStep(
    step_id="send_welcome_email",
    tool=email_tool,
    args={
        "to": "customer@example.com",
        "subject": "Welcome to our service",
        "template": "welcome_email"
    }
)

# Configure step options
tool_step.with_timeout(30).with_retry(2)

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

result = await Workflow("welcome_email").add_step(tool_step).execute(WorkflowContext())
print(f"{result.status}: {result.steps[0].output}")
