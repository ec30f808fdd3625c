"""The body of one DAG step attempt, by kind: script, JavaScript, python, action, noop.

Each body gets a StepCall (what the step sees) and returns a msgspec-serializable result or
raises; the attempt loop around it (durable.runtime._step_runner) records the outcome and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from durable._limits import cut
from durable._policy import FunctionRefused

from ._expr import evaluate, has_templates, render
from ._http import http_request, send_webhook
from ._model import DagDefinition, DagStep
from ._program import DagProgram
from ._script import ScriptResult, run_script
from ._services import DagServices
from ._validate import templated_params

JS_STEP_TIMEOUT = 30.0  # seconds, for JavaScript steps without a timeout of their own


@dataclass(slots=True)
class StepCall:
    run_id: str
    step: DagStep
    key: str  # the instance's name in the log
    matrix: dict[str, Any]
    iteration: int | None
    input: Any
    deps: dict[str, Any]  # direct dependencies' results, by id
    scope: Callable[[], dict[str, Any]]  # the expression scope, built on demand
    program: DagProgram
    services: DagServices
    idempotency_key: str
    first_started_at: float  # when this instance first started: a delay counts from there
    http_results: dict[str, bool]  # dependency id -> it is an http.request step
    # A delay says it sleeps until a deadline (and nothing else) while inside this: the
    # executor can then put the whole run aside until then (the worker parks it).
    sleeping: Callable[[float], contextlib.AbstractContextManager[None]]


class ScriptFailed(Exception):
    def __init__(self, step: str, result: ScriptResult, timeout: float | None) -> None:
        if result.timed_out:
            what = f"timed out after {timeout:g}s; its process group was killed"
        elif result.signal is not None:
            what = f"was killed by signal {result.signal}"
        else:
            what = f"exited with code {result.exit_code}"
        tail = result.stderr.strip()[-500:]
        super().__init__(f"script of step {step!r} {what}" + (f": {tail}" if tail else ""))
        self.details = {
            "exit_code": result.exit_code,
            # Its first and last parts (durable._limits): the error is stored per attempt.
            "stdout": cut(result.stdout),
            "stderr": cut(result.stderr),
            "timed_out": result.timed_out,
            "signal": result.signal,
            "cpu_seconds": result.cpu_seconds,
            "max_rss_kb": result.max_rss_kb,
        }


class StepConfigError(Exception):
    """The step's definition cannot run as written (a bad python target, bad params...)."""


async def run_body(call: StepCall) -> Any:
    step = call.step
    params: Any = templated_params(step)
    environment: Any = step.environment
    if has_templates(params) or has_templates(environment):
        pool = await call.services.js()
        scope = call.scope()
        params = await render(pool, params, scope, where="params")
        environment = await render(pool, environment, scope, where="environment")
    if params is not step.params:
        params = {**step.params, **params}  # the JavaScript-valued param, untouched
    if step.kind == "noop":
        return None
    if step.kind == "script":
        env = {str(k): _env_text(v) for k, v in environment.items()}
        return await _script(call, env)
    if step.kind == "javascript":
        return await _javascript(call, params)
    if step.kind == "python":
        return await _python(call, params)
    return await _action(call, params)


def _env_text(value: Any) -> str:
    """An environment variable's text: as a shell script would want it (JSON for structures,
    true/false for booleans, empty for null)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


async def _script(call: StepCall, env: dict[str, str]) -> Any:
    step = call.step
    assert step.script is not None
    result = await run_script(
        step.script,
        cwd=call.program.base_dir,
        env=env,
        timeout=step.timeout_seconds,
        memory_mb=step.resources.memory_mb,
        inherit_env=inherits_environment(call.program.definition, step),
        secrets=call.services.secrets,
    )
    if result.exit_code != 0 or result.timed_out:
        raise ScriptFailed(step.id, result, step.timeout_seconds)
    return {
        "exit_code": 0,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "duration_seconds": round(result.duration, 6),
        # The script's own process tree (durable.dag._script): cost per step, not per worker.
        "cpu_seconds": result.cpu_seconds,
        "max_rss_kb": result.max_rss_kb,
    }


def inherits_environment(definition: DagDefinition, step: DagStep) -> bool:
    """The step's own `inherit_environment`, else the definition's, else True."""
    for choice in (step.inherit_environment, definition.inherit_environment):
        if choice is not None:
            return choice
    return True


def _js_context(call: StepCall) -> dict[str, Any]:
    return {
        "event": call.input,
        "config": call.program.definition.config,
        "run_id": call.run_id,
        "step": call.step.id,
        "matrix": call.matrix,
        "iteration": call.iteration,
    }


async def _javascript(call: StepCall, params: Any) -> Any:
    step = call.step
    assert step.code is not None
    pool = await call.services.js()
    return await pool.evaluate(
        step.code,
        bindings={
            "deps": call.deps,
            "ctx": _js_context(call),
            "input": call.input,
            "matrix": call.matrix,
            "params": params,
        },
        functions=call.program.functions,
        timeout=step.timeout_seconds or JS_STEP_TIMEOUT,
    )


async def call_user(call: StepCall, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a user function: async ones on the loop, plain ones on the worker's step threads."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    value = await loop.run_in_executor(
        call.services.step_pool, functools.partial(ctx.run, fn, *args, **kwargs)
    )
    if inspect.isawaitable(value):
        value = await value
    return value


async def _python(call: StepCall, params: Any) -> Any:
    assert call.step.function is not None
    try:
        # Only what the app registered or the operator allowed; never any importable name.
        fn = call.program.python_function(call.step.function)
    except FunctionRefused as exc:
        raise StepConfigError(f"step {call.step.id!r}: {exc}") from None
    # Params are keyword arguments; a function may also ask for these by naming them.
    extras = {
        "deps": call.deps,
        "input": call.input,
        "matrix": call.matrix,
        "context": action_context(call),
    }
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    kwargs = dict(params)
    if signature is not None:
        names = signature.parameters
        kwargs.update({k: v for k, v in extras.items() if k in names and k not in kwargs})
    return await call_user(call, fn, **kwargs)


def action_context(call: StepCall) -> dict[str, Any]:
    return {
        "run_id": call.run_id,
        "step": call.step.id,
        "input": call.input,
        "deps": call.deps,
        "matrix": call.matrix,
        "iteration": call.iteration,
        "idempotency_key": call.idempotency_key,
    }


async def _action(call: StepCall, params: Any) -> Any:
    step = call.step
    action = step.action
    services = call.services
    if not isinstance(params, Mapping):
        raise StepConfigError(f"step {step.id!r}: params must be an object")
    if action == "http.request":
        return await http_request(services.http, params, idempotency_key=call.idempotency_key)
    if action == "webhook":
        return await send_webhook(services.http, params, idempotency_key=call.idempotency_key)
    if action == "delay":
        return await _delay(call, params)
    if action == "transform":
        return await _transform(call, params)
    if action == "condition":
        pool = await services.js()
        value = await evaluate(
            pool, str(params["expression"]), call.scope(), where=f"step {step.id!r} expression"
        )
        return bool(value)
    fn = services.actions.get(action or "")
    if fn is None:
        raise StepConfigError(
            f"step {step.id!r}: action {action!r} is not registered in this worker "
            "(app.register_action)"
        )
    return await call_user(call, fn, dict(params), action_context(call))


async def _delay(call: StepCall, params: Mapping[str, Any]) -> Any:
    duration = params.get("duration", params.get("ms"))
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise StepConfigError(
            f"step {call.step.id!r}: delay needs params.duration, a finite number of "
            f"milliseconds >= 0, got {duration!r}"
        )
    # Durable: the deadline counts from the first start recorded in the log, so a worker
    # that resumes the run after a crash waits only for what is left.
    deadline = call.first_started_at + duration / 1000.0
    if deadline > time.time():
        with call.sleeping(deadline):
            # Never early: asyncio may wake a timer up to its clock's resolution before its
            # time, and the wall clock the deadline is on can lag the loop's monotonic one.
            while (remaining := deadline - time.time()) > 0:  # noqa: ASYNC110  (a timer)
                await asyncio.sleep(remaining)
    return {"waited_ms": duration}


async def _transform(call: StepCall, params: Mapping[str, Any]) -> Any:
    code = params.get("code")
    if not isinstance(code, str) or not code.strip():
        raise StepConfigError(f"step {call.step.id!r}: transform needs params.code (JavaScript)")
    key = params.get("inputKey")
    if key is None:
        value = call.input
    elif key in call.deps:
        value = call.deps[key]
        if call.http_results.get(key):
            value = value.get("body")  # an HTTP step's data is its response body
    else:
        raise StepConfigError(
            f"step {call.step.id!r}: params.inputKey {key!r} is not one of its dependencies "
            f"({', '.join(sorted(call.deps)) or 'none'}); add it to dependencies"
        )
    pool = await call.services.js()
    return await pool.evaluate(
        code,
        bindings={"input": value, "deps": call.deps, "context": call.scope()["context"]},
        timeout=call.step.timeout_seconds or JS_STEP_TIMEOUT,
    )
