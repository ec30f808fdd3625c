"""App: the one object users create. Decorators register workflows and steps; `async with app`
opens the database, starts the in-process worker and recovers unfinished runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from durable import (
    Approval,
    Engine,
    HistoryInfo,
    LoggedEvent,
    Registry,
    RetryPolicy,
    RunHandle,
    RunInfo,
    RunSummary,
    RunUsage,
    Step,
    WorkerOptions,
    resolve_url,
)
from durable._durations import check_duration
from durable.dag import (
    DagBuilder,
    DagDefinition,
    DagProgram,
    DagResult,
    load_definition,
    validate_definition,
)
from durable.queues._options import IfDuplicate, queue_start
from durable.runtime._registry import check_max_crashes
from sdk._external import ExternalMethods
from sdk._queues import QueueMethods
from sdk._schedules import ScheduleMethods
from sdk._streams import StreamMethods
from sdk._updates import UpdateMethods
from sdk._values import ValueMethods

if TYPE_CHECKING:  # durable.agents imports Pydantic AI: only when App.agent() is called
    from pydantic_ai.agent import AbstractAgent, EventStreamHandler
    from pydantic_ai.models import Model

    from durable.agents import DurableAgent
    from durable.flow import Workflow

# What names a workflow to start: a workflow function, a registered name, a DAG builder.
WorkflowRef = str | Callable[..., Any] | DagBuilder

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W", bound=Callable[..., Coroutine[Any, Any, Any]])
F = TypeVar("F", bound=Callable[..., Any])
DepsT = TypeVar("DepsT")
OutputT = TypeVar("OutputT")


class App(
    ScheduleMethods, QueueMethods, ExternalMethods, ValueMethods, StreamMethods, UpdateMethods
):
    """A durable application.

    App() uses the SQLite file ./durable.db unless a URL is given or DURABLE_DATABASE_URL is set:
    "sqlite:///path.db", "memory://" (tests, not durable).

    What DAG definitions may reach is the application's to grant: `function:` steps call only
    functions registered with register_function() or defined in `allowed_function_modules`
    (a module and its submodules: "myproject.tasks" allows "myproject.tasks.billing", not
    "myproject.tasks2"); `{{ env.X }}` expressions see only the variables in `expose_env`
    (names, or PREFIX* patterns), none by default.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        lease_ttl: float = 15.0,
        poll_interval: float | None = None,
        max_concurrent_runs: int = 1000,
        step_threads: int = 32,
        worker: bool = True,
        park_after: float = 1.0,
        allowed_function_modules: Iterable[str] = (),
        expose_env: Iterable[str] = (),
        max_step_crashes: int = 10,
        snapshot_every: int = 1000,
    ) -> None:
        self._url = url
        self._registry = Registry()
        self._registry.max_step_crashes = check_max_crashes(
            "App max_step_crashes", max_step_crashes
        )
        self._registry.policy.allow_modules(allowed_function_modules)
        self._registry.policy.expose_env(expose_env)
        self._options = WorkerOptions(
            lease_ttl=lease_ttl,
            poll_interval=poll_interval,
            max_concurrent_runs=max_concurrent_runs,
            step_threads=step_threads,
            park_after=park_after,
            snapshot_every=snapshot_every,
        )
        self._run_worker = worker
        self._engine: Engine | None = None

    # -- definitions --------------------------------------------------------------------

    @overload
    def step(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Step[P, R]: ...

    @overload
    def step(self, fn: Callable[P, R], /) -> Step[P, R]: ...

    @overload
    def step(
        self,
        /,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        max_crashes: int | None = None,
    ) -> _StepDecorator: ...

    def step(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        max_crashes: int | None = None,
    ) -> Step[Any, Any] | _StepDecorator:
        """Declare a step: @app.step or @app.step(retry=RetryPolicy(...), timeout=5.0).
        Async functions run on the event loop, plain functions in a worker thread.
        `max_crashes`: how many attempts in a row may end with the worker process dying
        (a segfault, the OOM killer, os._exit) before the step fails with
        durable.StepInterrupted instead of running again (default App(max_step_crashes=10))."""
        decorator = _StepDecorator(self._registry, name, retry, timeout, max_crashes)
        return decorator if fn is None else decorator(fn)

    @overload
    def workflow(self, fn: W, /) -> W: ...

    @overload
    def workflow(self, /, *, name: str | None = None, version: str = "1") -> Callable[[W], W]: ...

    def workflow(
        self, fn: W | None = None, /, *, name: str | None = None, version: str = "1"
    ) -> W | Callable[[W], W]:
        """Declare a workflow: an async function taking (ctx) or (ctx, input)."""

        def register(f: W) -> W:
            self._registry.add_workflow(f, name=name, version=version)
            return f

        return register if fn is None else register(fn)

    def dag(
        self,
        name: str,
        *,
        version: str = "1",
        api: Mapping[str, Callable[..., Any]] | None = None,
        config: Mapping[str, Any] | None = None,
        parallelism: int | None = None,
        queues: Mapping[str, Mapping[str, Any] | None] | None = None,
        queue: str | None = None,
    ) -> DagBuilder:
        """A DAG built in Python (steps are JavaScript; `api` functions are callable from it).
        It is registered when first started (app.run/start/run_dag). `queues`: queues it
        declares, name -> app.queue's limits ({"emails": {"concurrency": 1}}); `queue`: the
        queue its runs start in unless the start names one; a step's own `queue=` (do, js)
        must name a queue declared there or with app.queue."""
        return DagBuilder(
            name,
            version=version,
            api=api,
            config=config,
            parallelism=parallelism,
            queues=queues,
            queue=queue,
        )

    def register_dag(
        self,
        definition: DagBuilder | DagDefinition | str | Path,
        *,
        functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> str:
        """Register a DAG (a builder, a definition, or a YAML/JSON file path) and return
        its workflow name. Custom actions it uses must be registered first."""
        if isinstance(definition, DagBuilder):
            program = definition.program()
        else:
            if isinstance(definition, DagDefinition):
                definition = validate_definition(definition, self._registry.actions)
            else:
                definition = load_definition(definition, known_actions=self._registry.actions)
            program = DagProgram(definition, functions=dict(functions or {}))
        return self._registry.add_dag(program).name

    def register_action(self, name: str, fn: Callable[..., Any]) -> None:
        """Add a DAG action: `fn(params, context)`, sync or async; its return value is the
        step's result. context: run_id, step, input, deps, matrix, idempotency_key."""
        self._registry.add_action(name, fn)

    def register_function(self, fn: F, /, *, name: str | None = None) -> F:
        """Let DAG `function:` steps call `fn` (sync or async), by default under the name
        "module:qualname" it is defined as, else `name` ("namespace:function"). Register it
        before the DAGs that use it. Returns `fn`, so it also works as a decorator."""
        self._registry.policy.add_function(fn, name)
        return fn

    def agent(
        self,
        agent: AbstractAgent[DepsT, OutputT],
        /,
        *,
        name: str | None = None,
        models: Mapping[str, Model] | None = None,
        event_stream_handler: EventStreamHandler[DepsT] | None = None,
        model_retry: RetryPolicy | None = None,
        tool_retry: RetryPolicy | None = None,
        model_timeout: float | None = None,
        tool_timeout: float | None = None,
        approvals: bool | None = None,
    ) -> DurableAgent[DepsT, OutputT]:
        """A Pydantic AI agent made durable inside this app's workflows (the `agents` extra):
        `await durable_agent.run(prompt)` in a workflow records each model request (its response
        and token usage) and each tool call as a step, so a crash resumes the conversation from
        the last recorded step. `name` (default: the agent's) names those steps: keep it
        stable. Retries: model requests 3 attempts, tools 1, unless a RetryPolicy says
        otherwise (per tool: `metadata={"durable": {"retry": RetryPolicy(...)}}`).
        `approvals`: a tool call that needs approval (`requires_approval=True`) is recorded and
        waits, parked, for app.approve()/app.deny() (`durable approve`, the HTTP API, the
        dashboard). On by default, unless the agent's output_type includes
        DeferredToolRequests (the workflow then handles them itself); False: never. See
        docs/agents.md."""
        from durable.agents import DEFAULT_MODEL_RETRY, DEFAULT_TOOL_RETRY, DurableAgent

        return DurableAgent(
            agent,
            name=name,
            models=models,
            event_stream_handler=event_stream_handler,
            model_retry=model_retry or DEFAULT_MODEL_RETRY,
            tool_retry=tool_retry or DEFAULT_TOOL_RETRY,
            model_timeout=model_timeout,
            tool_timeout=tool_timeout,
            max_step_crashes=self._registry.max_step_crashes,
            approvals=approvals,
        )

    def register_workflow(
        self,
        workflow: Workflow,
        /,
        *,
        tools: Iterable[Any] | Mapping[str, Any] = (),
        agents: Iterable[Any] | Mapping[str, Any] = (),
        model: Any = None,
    ) -> Workflow:
        """Register a builder workflow (sdk.workflows: Workflow, WorkflowBuilder) so this
        app's workers run its runs; `tools`, `agents` and `model` as WorkflowEngine takes
        them. sdk.workflows.WorkflowEngine(app) registers what it executes by itself."""
        from durable.flow._resolve import Catalog

        workflow.register(self._registry, Catalog(tools, agents), model)
        return workflow

    def _ref(self, workflow: WorkflowRef) -> str | Callable[..., Any]:
        if isinstance(workflow, DagBuilder):
            return self.register_dag(workflow)
        return workflow

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        engine = Engine(
            self._url, self._registry, run_worker=self._run_worker, options=self._options
        )
        await engine.open()
        self._engine = engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.close()

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the app is not open: use 'async with app:' first")
        return self._engine

    # -- what the CLI reads (durable.AppLike) ------------------------------------------

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def database_url(self) -> str:
        return resolve_url(self._url)

    @property
    def worker_options(self) -> WorkerOptions:
        return self._options

    # -- runs ---------------------------------------------------------------------------

    async def start(
        self,
        workflow: WorkflowRef,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        parallelism: int | None = None,
        timeout: float | None = None,
        queue: str | None = None,
        priority: int | None = None,
        partition_key: str | None = None,
        dedupe_key: str | None = None,
        delay: float | None = None,
        if_duplicate: IfDuplicate = "error",
    ) -> RunHandle:
        """Start a run. Idempotent on run_id: an existing run's handle is returned instead.
        New runs take the newest registered version unless `version` says which.
        `parallelism` caps the steps of a DAG run running at once. `timeout`: seconds the
        whole run may take (a deadline, kept across restarts); past it the run fails.

        `queue`: the run waits in that declared queue (app.queue) until it admits it, by
        `priority` (higher first, default 0), fairly between `partition_key`s, not before
        `delay` seconds. `dedupe_key`: refused (DuplicateRunError, naming the run) while an
        unfinished run of the queue has the same key, or that run's handle is returned
        with if_duplicate="return"."""
        ref = self._ref(workflow)  # a builder is registered now, with the queues it declares
        engine = self.engine
        await engine.declare_new_queues()
        queued = queue_start(
            self._registry.queues,
            queue,
            priority=priority,
            partition_key=partition_key,
            dedupe_key=dedupe_key,
            delay=delay,
            if_duplicate=if_duplicate,
        )
        return await engine.client.start(
            ref,
            input,
            run_id=run_id,
            version=version,
            parallelism=parallelism,
            timeout=timeout,
            queued=queued,
        )

    async def signal(self, run_id: str, name: str, payload: Any = None) -> None:
        """Send signal `name` with `payload` to a run (see ctx.wait_for_signal())."""
        await self.engine.client.signal(run_id, name, payload)

    async def approvals(self, run_id: str) -> list[Approval]:
        """The tool calls of the run's durable agents that needed approval, in the order
        requested: tool_call_id, tool_name, args, agent, requested_at, status ("pending",
        "approved", "denied"), reason, decided_at."""
        return await self.engine.client.approvals(run_id)

    async def approve(self, run_id: str, tool_call_id: str, reason: str | None = None) -> Approval:
        """Approve the run's pending tool call `tool_call_id`: the agent runs the tool (as a
        recorded step) and goes on. Durable once this returns. ApprovalError if the call is
        unknown or already decided; nothing is sent then."""
        return await self.engine.client.decide(run_id, tool_call_id, approved=True, reason=reason)

    async def deny(self, run_id: str, tool_call_id: str, reason: str | None = None) -> Approval:
        """Deny the run's pending tool call `tool_call_id`: the tool does not run, and the
        model is told `reason` (Pydantic AI's ToolDenied). As approve() otherwise."""
        return await self.engine.client.decide(run_id, tool_call_id, approved=False, reason=reason)

    async def cancel(self, run_id: str, reason: str = "") -> None:
        """Cancel a run and its children, except those started with parent_close="abandon"
        (see Client.cancel)."""
        await self.engine.client.cancel(run_id, reason)

    async def fork(
        self,
        run_id: str,
        from_step: str | int,
        *,
        version: str | None = None,
        new_run_id: str | None = None,
    ) -> RunHandle:
        """A new run that reuses the finished run's recorded results before `from_step` (a
        position or a step name) and executes from there, optionally on another version."""
        return await self.engine.client.fork(
            run_id, from_step, version=version, new_run_id=new_run_id
        )

    async def retry(self, run_id: str, *, timeout: float | None = None) -> RunHandle:
        """Resume a failed or cancelled run in place from where it ended (see
        Client.retry): what it completed is not run again."""
        return await self.engine.client.retry(run_id, timeout=timeout)

    async def run(
        self,
        workflow: WorkflowRef,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Start a run and wait for its result (raises RunFailed if it fails, and for a DAG
        run that ended partial too; a DAG's result is its final step's result, or a dict of
        its final steps' results). run_dag() returns a DAG's outcome without raising."""
        if timeout is not None:  # refused before a run is started that nobody would wait for
            check_duration("run() timeout", timeout)
        handle = await self.start(workflow, input, run_id=run_id, version=version)
        return await handle.result(timeout)

    async def run_dag(
        self,
        workflow: WorkflowRef,
        input: Any = None,
        *,
        run_id: str | None = None,
        version: str | None = None,
        parallelism: int | None = None,
        timeout: float | None = None,
    ) -> DagResult:
        """Run a DAG to its end and return its DagResult (status succeeded, partial or
        failed, counts, duration, every step's result); a failed run does not raise."""
        if timeout is not None:
            check_duration("run_dag() timeout", timeout)
        handle = await self.start(
            workflow, input, run_id=run_id, version=version, parallelism=parallelism
        )
        async with asyncio.timeout(timeout):
            await self.engine.client.wait(handle.run_id)
        return await self.engine.client.dag_result(handle.run_id)

    async def dag_result(self, run_id: str) -> DagResult:
        return await self.engine.client.dag_result(run_id)

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run, e.g. to wait for its result."""
        client = self.engine.client
        return RunHandle(client, run_id, None)

    async def get_run(self, run_id: str) -> RunInfo:
        return await self.engine.client.get_run(run_id)

    async def histories(self, run_id: str) -> list[HistoryInfo]:
        """The chain of the run's histories (ctx.continue_as_new()), oldest first."""
        return await self.engine.client.histories(run_id)

    async def usage(self, run_id: str) -> RunUsage:
        """What the run cost: its model requests' token counters and its script steps' CPU
        time and peak memory, in total and per step (docs/agents.md, "Cost and usage")."""
        return await self.engine.client.usage(run_id)

    async def list_runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> list[RunSummary]:
        return await self.engine.client.list_runs(status=status, workflow=workflow, limit=limit)

    async def events(self, run_id: str) -> list[LoggedEvent]:
        return await self.engine.client.events(run_id)

    def watch(self, run_id: str) -> AsyncIterator[LoggedEvent]:
        """Every event of the run from the first, then live ones until it ends."""
        return self.engine.client.watch(run_id)


class _StepDecorator:
    def __init__(
        self,
        registry: Registry,
        name: str | None,
        retry: RetryPolicy | None,
        timeout: float | None,
        max_crashes: int | None = None,
    ) -> None:
        self._registry = registry
        self._name = name
        self._retry = retry
        self._timeout = timeout
        self._max_crashes = max_crashes

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Step[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Step[P, R]: ...

    def __call__(self, fn: Callable[..., Any], /) -> Step[Any, Any]:
        definition = self._registry.add_step(
            fn,
            name=self._name,
            retry=self._retry,
            timeout=self._timeout,
            max_crashes=self._max_crashes,
        )
        return Step(definition)
