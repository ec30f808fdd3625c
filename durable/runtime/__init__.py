"""The run runtime: executing one Python workflow run against its event log.

The modules, each importing only those listed before it (tests/test_layers.py checks it):

- `_external`  external waits: the completion token, `ExternalWait`, the inbox outcome.
- `_context`   what workflow code calls besides steps: `Context`, `ChildRun`, and the
               `WorkflowRuntime` protocol its commands go through; `StepContext`.
- `_registry`  the app's definitions: `@app.workflow`, `@app.step` (`Step`, `StepDef`,
               `WorkflowDef`, `RetryPolicy`, `Registry`). A step called inside a workflow
               becomes a command of the current run's executor.
- `_stops`     EndOfHistory, ExecutionStopped: an execution stopping without an outcome.
- `_guard`     read-only handlers (queries): every durable command refused while one runs.
- `_streams`   ctx.write_stream / durable.write_stream: stream values from workflow code
               (logged commands) and step bodies (exactly-once by producer, not logged).
- `_order`     replays hand recorded outcomes back in the order they were recorded.
- `_waits`     durable waits (timers, signals, child runs) of one executor.
- `_select`    ctx.wait / ctx.as_completed, a deterministic select; refusing raw asyncio
               races over durable awaitables.
- `_step_runner` one step's attempts, timeouts, retries and recorded outcome (shared with
               the DAG runner).
- `_child_starts` child runs being created, until their start is recorded: they keep the
               run from being parked, and the run's end records them first.
- `_watch`     between the workflow's turns: delivering a recorded cancel at its current await,
               telling the worker the run only waits, the parking invariant (park_problem).
- `_continue`  ctx.continue_as_new(): the commit that closes a history and opens the next.
- `_markers`   ctx.now()/uuid4()/random()/patched(): values produced once and recorded.
- `_values`    ctx.set_event() (a recorded value with its projection row), ctx.on_query().
- `_updates`   ctx.on_update handlers: taking updates from the inbox (validate, accept at a
               position, run the handler beside the workflow, record its answer), and
               relaunching accepted ones on a replay in their turn.
- `_child_commands` ctx.start_child / run_child / child.result(): the executor's child
               commands (a base class of RunExecutor).
- `_executor`  `RunExecutor`: re-executes the workflow coroutine against the run's log,
               answers each command from the log or runs it live and records it.

Below the runtime: the run's state folded from its events (durable._state), the log it
appends to (durable._runlog) and the store (storage). Above it: the worker, which claims runs
and gives each an executor (durable._worker), the replayer (durable._replay) and the client.
"""
