# The agent workflow document's example "Best Practices: 1. Design for Idempotency" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/idempotency.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
from services import user_exists
from sdk.workflows import ConditionalStep, ToolStep

# -- the document's code -----------------------------------------------------------------------
# Good: Idempotent step
idempotent_step = ToolStep("create_user_account") \
    .with_params_function(
        lambda state: {
            "user_id": state["user_id"],
            "email": state["email"],
            "upsert": True  # Create or update
        }
    )

# Good: Check before action
safe_step = ConditionalStep("create_if_not_exists") \
    .condition(lambda state: not user_exists(state["user_id"])) \
    .if_true(ToolStep("create_user_account"))

# -- not in the document: running it -----------------------------------------------------------
from sdk.workflows import Workflow, WorkflowContext

for user_id in ("u-new", "u-existing"):
    context = WorkflowContext(
        workflow_id=f"signup-{user_id}", variables={"user_id": user_id, "email": "a@b.c"}
    )
    first = await Workflow("upsert_user").add_step(idempotent_step).execute(context)
    context = WorkflowContext(
        workflow_id=f"safe-signup-{user_id}", variables={"user_id": user_id, "email": "a@b.c"}
    )
    second = await Workflow("create_if_missing").add_step(safe_step).execute(context)
    print(f"{user_id}: upsert {first.status}, create_if_not_exists {second.steps[0].status}")
