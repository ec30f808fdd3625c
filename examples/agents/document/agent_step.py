# The agent workflow document's example "AgentStep" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/agent_step.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- the document's code -----------------------------------------------------------------------
from sdk.workflows import AgentStep
from sdk.workflows import Agent

# Create an agent
def instructions(state):
    return "You are a helpful customer service agent."

customer_agent = Agent(
    name="CustomerServiceAgent",
    instructions=instructions,
    tools=[]
)

# Create agent step
agent_step = AgentStep(
    step_id="customer_service",
    agent=customer_agent,
    message="Handle customer inquiry about billing"
)

# Configure step options
agent_step.with_timeout(60).with_retry(3)

# Add execution conditions
agent_step.add_condition(lambda context: context.variables.get("priority") == "high")

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

workflow = Workflow("billing_inquiry").add_step(agent_step)
for priority in ("high", "low"):
    context = WorkflowContext(workflow_id=f"billing-{priority}", variables={"priority": priority})
    result = await workflow.execute(context)
    print(f"priority {priority}: {result.status}, {result.steps[0].status}: {result.steps[0].output}")
