"""JavaScript expressions and `{{ ... }}` templates of DAG definitions, evaluated in the sandbox.

One language for every dynamic value (`condition`, `skip_if`, `loop.until`, templates in
`params`, `environment` and notifications), always evaluated in the JavaScript sandbox pool,
never in the engine's process.

Scope (names an expression can use)
    steps     every finished step by id: {status, succeeded, failed, skipped, result, error,
              exit_code, stdout, stderr, attempts}
    <step id> the same view under the step's own name, when the id is a JavaScript
              identifier (`process_data.exit_code`); other ids via `steps["my-step"]`
    deps      the results of the step's direct dependencies, by id
    input     the run's input;  context  the input's keys plus the step views (003's style)
    matrix    this matrix instance's values;  config  the definition's config
    env       the worker's environment variables the operator exposed (App(expose_env=...),
              --expose-env, $DURABLE_EXPOSE_ENV); none by default
    result, iteration   inside a loop's `until`: the iteration's result and number (from 1)

A template that is a whole string (`'{{ matrix.batch_id }}'`) gives the expression's value
with its type; inside a longer string each template is replaced by its JavaScript `String()`.
All templates of one step are evaluated together, in one sandbox round trip.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from durable.js import JsError, JsSandboxPool

from ._model import DagDefinition, DagStep, Location
from ._problems import Problem, problem_at
from ._validate import expression_of, templated_params

_RESERVED = frozenset(
    [
        "steps",
        "deps",
        "input",
        "context",
        "matrix",
        "config",
        "env",
        "result",
        "iteration",
        "ctx",
        "params",
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "debugger",
        "default",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "false",
        "finally",
        "for",
        "function",
        "if",
        "implements",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "new",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "static",
        "super",
        "switch",
        "this",
        "throw",
        "true",
        "try",
        "typeof",
        "var",
        "void",
        "while",
        "with",
        "yield",
        "undefined",
        "NaN",
        "Infinity",
        "globalThis",
        "eval",
        "arguments",
    ]
)


class ExpressionError(Exception):
    """An expression or template could not be evaluated: names the field and the JS error."""


def scope_bindings(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The JS globals for a scope: its own names, plus each step view under its id."""
    bindings = dict(scope)
    for step_id, view in scope.get("steps", {}).items():
        if step_id.isidentifier() and step_id.isascii() and step_id not in _RESERVED:
            bindings.setdefault(step_id, view)
    return bindings


def has_templates(value: object) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(has_templates(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_templates(v) for v in value)
    return False


def _compile(text: str, where: str) -> str:
    """JavaScript for one template string: its typed value, or the interpolated string."""
    whole, error = expression_of(text)
    if error is None and whole is not None and text.strip().startswith("{{"):
        return _guarded(whole, where)
    parts: list[str] = []
    pos = 0
    while True:
        opening = text.find("{{", pos)
        if opening < 0:
            parts.append(json.dumps(text[pos:]))
            break
        closing = text.find("}}", opening)
        parts.append(json.dumps(text[pos:opening]))
        parts.append(f"String({_guarded(text[opening + 2 : closing].strip(), where)})")
        pos = closing + 2
    return " + ".join(parts)


def _guarded(expr: str, where: str) -> str:
    # Each expression in its own function, so a throw names the field it came from.
    label = json.dumps(where)
    return (
        f"(() => {{ try {{ return ({expr}\n); }} catch (e) {{ "
        f"throw new Error({label} + ': ' + (e && e.message || e)); }} }})()"
    )


async def evaluate(
    pool: JsSandboxPool, expr: str, scope: Mapping[str, Any], *, where: str, timeout: float = 10.0
) -> Any:
    """The value of one bare JavaScript expression."""
    code = f"return {_guarded(expr, where)};"
    try:
        return await pool.evaluate(code, bindings=scope_bindings(scope), timeout=timeout)
    except JsError as exc:
        raise ExpressionError(f"{where}: {exc.message}") from None


async def render(
    pool: JsSandboxPool,
    value: Any,
    scope: Mapping[str, Any],
    *,
    where: str,
    timeout: float = 10.0,
) -> Any:
    """`value` (a params/environment structure) with every template replaced."""
    found: list[tuple[str, str]] = []

    def collect(item: Any, path: str) -> None:
        if isinstance(item, str):
            if "{{" in item:
                found.append((path, item))
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                collect(sub, f"{path}.{key}")
        elif isinstance(item, list | tuple):
            for i, sub in enumerate(item):
                collect(sub, f"{path}[{i}]")

    collect(value, where)
    if not found:
        return value
    code = "return [" + ", ".join(_compile(text, path) for path, text in found) + "];"
    try:
        results = await pool.evaluate(code, bindings=scope_bindings(scope), timeout=timeout)
    except JsError as exc:
        raise ExpressionError(exc.message) from None
    replaced = dict(zip((path for path, _ in found), results, strict=True))
    return _substitute(value, where, replaced.__getitem__, set(replaced))


def _substitute(item: Any, path: str, get: Callable[[str], Any], paths: set[str]) -> Any:
    if isinstance(item, str):
        return get(path) if path in paths else item
    if isinstance(item, Mapping):
        return {k: _substitute(v, f"{path}.{k}", get, paths) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [_substitute(v, f"{path}[{i}]", get, paths) for i, v in enumerate(item)]
    return item


_SYNTAX_CHECK = """
const AsyncFunction = (async function () {}).constructor;
const errors = [];
for (const [i, kind, source] of sources) {
  try {
    if (kind === "body") new AsyncFunction(source);
    else new Function("return (" + source + "\\n);");
  } catch (e) {
    errors.push([i, String(e && e.message || e)]);
  }
}
return errors;
"""


_Source = tuple[str, Location, str, str, str]


def _sources(definition: DagDefinition) -> list[_Source]:
    """(owner, location, model key, kind, JavaScript) of every piece of JavaScript."""
    found: list[_Source] = []
    for step in definition.steps:
        found.extend((f"step {step.id!r}: ", step.location, *src) for src in _step_sources(step))
    for kind in ("on_success", "on_failure"):
        for note in getattr(definition.notifications, kind):
            for key, text in _strings(msgspec.to_builtins(note)):
                found.extend(
                    (f"{kind} {note.type}: ", note.location, key, "expr", e)
                    for e in template_expressions(text)
                )
    return found


def _step_sources(step: DagStep) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for key in ("condition", "skip_if"):
        text = getattr(step, key)
        if text is not None:
            found.append((key, "expr", text))
    if step.loop is not None:
        found.append(("loop", "expr", step.loop.until))
    if step.code is not None:
        found.append(("code", "body", step.code))
    if step.action == "condition" and isinstance(step.params.get("expression"), str):
        found.append(("params.expression", "expr", step.params["expression"]))
    if step.action == "transform" and isinstance(step.params.get("code"), str):
        found.append(("params.code", "body", step.params["code"]))
    for key, text in _strings({"params": templated_params(step), "environment": step.environment}):
        found.extend((key, "expr", expr) for expr in template_expressions(text))
    return found


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(key, value)]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _strings(v, f"{key}.{k}" if key else k)]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _strings(v, f"{key}[{i}]")]
    return []


def template_expressions(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while (opening := text.find("{{", pos)) >= 0:
        closing = text.find("}}", opening)
        if closing < 0:
            break
        out.append(text[opening + 2 : closing].strip())
        pos = closing + 2
    return out


def has_javascript(definition: DagDefinition) -> bool:
    return bool(_sources(definition))


async def syntax_problems(
    definition: DagDefinition, pool: JsSandboxPool | Callable[[], Awaitable[JsSandboxPool]]
) -> list[Problem]:
    """JavaScript syntax errors anywhere in the definition, each with its file and line.

    Compiled (`new Function`), never run, in the sandbox: V8 itself is the parser, so what
    passes here is exactly what the steps will be able to run.
    """
    sources = _sources(definition)
    if not sources:
        return []
    if not isinstance(pool, JsSandboxPool):
        pool = await pool()
    payload = [[i, kind, text] for i, (_, _, _, kind, text) in enumerate(sources)]
    errors = await pool.evaluate(_SYNTAX_CHECK, bindings={"sources": payload}, timeout=30.0)
    problems: list[Problem] = []
    for index, message in errors:
        what, loc, key, _, text = sources[index]
        problems.append(
            problem_at(f"{what}bad JavaScript in {key} ({text!r}): {message}", loc, key)
        )
    return problems
