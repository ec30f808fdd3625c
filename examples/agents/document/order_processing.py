# The agent workflow document's example "Example: Complete E-commerce Order Processing" (seed 004), as written: only its imports
# changed (jaf -> sdk.workflows). Run it with `python examples/agents/run_document.py document/order_processing.py`.
# The document writes its snippets like a notebook (top-level await); run.py runs them so.

# -- what the document leaves out (../services.py defines it) -------------------------
import services  # noqa: F401  (the tools and agents the workflow names)

# -- the document's code -----------------------------------------------------------------------
import asyncio
from sdk.workflows import WorkflowBuilder, WorkflowEngine, WorkflowContext
from sdk.workflows import AgentStep, ToolStep, ConditionalStep, ParallelStep

async def create_order_processing_workflow():
    """Create a comprehensive order processing workflow."""
    
    return WorkflowBuilder("ecommerce_order_processing") \
        .description("Complete e-commerce order processing pipeline") \
        .add_step(
            # Step 1: Validate order
            ToolStep("validate_order")
            .with_params_function(
                lambda state: {"order_id": state["order_id"]}
            )
            .with_timeout(30)
            .with_retry(max_attempts=3)
        ) \
        .add_step(
            # Step 2: Check inventory
            ConditionalStep("inventory_check")
            .condition(lambda state: state.get("order_valid", False))
            .if_true(
                ToolStep("check_inventory")
                .with_params_function(
                    lambda state: {"items": state["order_items"]}
                )
            )
            .if_false(
                AgentStep("order_validation_agent")
                .with_input("Handle invalid order")
            )
        ) \
        .add_step(
            # Step 3: Process payment
            ConditionalStep("payment_processing")
            .condition(lambda state: state.get("inventory_available", False))
            .if_true(
                ToolStep("process_payment")
                .with_params_function(
                    lambda state: {
                        "amount": state["order_total"],
                        "payment_method": state["payment_method"]
                    }
                )
                .with_timeout(60)
                .with_retry(max_attempts=2)
            )
            .if_false(
                AgentStep("inventory_agent")
                .with_input("Handle out of stock items")
            )
        ) \
        .add_step(
            # Step 4: Parallel fulfillment
            ConditionalStep("fulfillment_check")
            .condition(lambda state: state.get("payment_successful", False))
            .if_true(
                ParallelStep("order_fulfillment")
                .add_branch(
                    # Update inventory
                    ToolStep("update_inventory")
                    .with_params_function(
                        lambda state: {"items": state["order_items"]}
                    )
                )
                .add_branch(
                    # Generate shipping label
                    ToolStep("create_shipping_label")
                    .with_params_function(
                        lambda state: {
                            "address": state["shipping_address"],
                            "items": state["order_items"]
                        }
                    )
                )
                .add_branch(
                    # Send confirmation email
                    ToolStep("send_confirmation_email")
                    .with_params_function(
                        lambda state: {
                            "customer_email": state["customer_email"],
                            "order_id": state["order_id"]
                        }
                    )
                )
                .add_branch(
                    # Update CRM
                    ToolStep("update_crm")
                    .with_params_function(
                        lambda state: {
                            "customer_id": state["customer_id"],
                            "order_value": state["order_total"]
                        }
                    )
                )
                .with_timeout(120)
                .with_failure_policy("continue_on_partial_failure")
                .with_minimum_success_count(3)
            )
        ) \
        .add_step(
            # Step 5: Final notification
            AgentStep("fulfillment_agent")
            .with_input_function(
                lambda state: f"Complete order fulfillment for order {state['order_id']}"
            )
            .with_context_function(
                lambda state: {
                    "order_status": state.get("fulfillment_status", "unknown"),
                    "customer_tier": state.get("customer_tier", "standard")
                }
            )
        ) \
        .with_error_handler(
            lambda error, step, state: {
                "action": "retry" if "network" in str(error).lower() else "fail",
                "escalate": True,
                "notify_team": True
            }
        ) \
        .build()

async def main():
    """Demonstrate the complete order processing workflow."""
    
    # Create workflow
    workflow = await create_order_processing_workflow()
    
    # Create engine
    engine = WorkflowEngine()
    
    # Create execution context
    context = WorkflowContext(
        workflow_id="order_12345",
        initial_data={
            "order_id": "ORD-12345",
            "customer_id": "CUST-67890",
            "customer_email": "customer@example.com",
            "order_items": [
                {"sku": "ITEM-001", "quantity": 2, "price": 29.99},
                {"sku": "ITEM-002", "quantity": 1, "price": 49.99}
            ],
            "order_total": 109.97,
            "payment_method": "credit_card",
            "shipping_address": {
                "street": "123 Main St",
                "city": "Anytown",
                "state": "CA",
                "zip": "12345"
            },
            "customer_tier": "premium"
        },
        metadata={
            "started_by": "order_service",
            "priority": "normal",
            "source": "web"
        }
    )
    
    # Execute workflow
    print("🚀 Starting order processing workflow...")
    result = await engine.execute_workflow(workflow, context)
    
    # Display results
    print(f"✅ Workflow completed with status: {result.status}")
    print(f"⏱️ Total execution time: {result.execution_time_ms}ms")
    print(f"📊 Steps completed: {result.steps_completed}/{result.total_steps}")
    
    if result.status == "failed":
        print(f"❌ Error: {result.error}")
    else:
        print(f"🎉 Order {context.initial_data['order_id']} processed successfully!")

if __name__ == "__main__":
    asyncio.run(main())
