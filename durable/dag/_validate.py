"""Semantic validation of a DagDefinition, and the deterministic orders a scheduler uses.

Validation works on the model, not on YAML or JSON, so the Python builder gets exactly the
same checks; the model's Locations let each problem still name its file and line.
"""

from __future__ import annotations

import difflib
import heapq
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from durable._errors import InvalidIdError
from durable._ids import check_id

from ._loops import loop_problems
from ._model import BUILTIN_ACTIONS, DagDefinition, DagStep
from ._problems import DagDefinitionError, Problem, problem_at

# The one field without which each notification channel cannot deliver anything.
_NOTIFY_NEEDS = {
    "slack": "webhook",
    "email": "recipients",
    "pagerduty": "integration_key",
    "webhook": "url",
}


_ID_RESERVED = frozenset("[]#@")
_KIND_NEEDS = {"script": "script", "javascript": "code", "python": "function", "action": "action"}
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def id_problem(kind: str, value: str) -> str | None:
    try:
        check_id(kind, value)
    except InvalidIdError as exc:
        return str(exc)
    return None


def template_errors(text: str) -> list[str]:
    """Syntax of `{{ ... }}` templates: balanced, not nested, not empty.

    The JavaScript inside is evaluated later in the sandbox; here we only make sure the
    template can be cut into expressions at all, and say where (column) it breaks.
    """
    errors: list[str] = []
    pos = 0
    while True:
        opening = text.find("{{", pos)
        closing = text.find("}}", pos)
        if opening < 0:
            if closing >= 0:
                errors.append(f"'}}}}' without a matching '{{{{' at column {closing + 1}")
            return errors
        if 0 <= closing < opening:
            errors.append(f"'}}}}' without a matching '{{{{' at column {closing + 1}")
            return errors
        end = text.find("}}", opening + 2)
        if end < 0:
            errors.append(f"unclosed '{{{{' at column {opening + 1}")
            return errors
        inner = text[opening + 2 : end]
        if "{{" in inner:
            errors.append(f"nested '{{{{' inside the template at column {opening + 1}")
            return errors
        if not inner.strip():
            errors.append(f"empty template '{{{{ }}}}' at column {opening + 1}")
        pos = end + 2


def expression_of(text: str) -> tuple[str | None, str | None]:
    """(expression, error) for a condition/skip_if/until field.

    Accepts a bare JavaScript expression (003 style) or one whole `{{ expr }}` template (002
    style); the model keeps the bare expression so both spellings fingerprint the same.
    """
    stripped = text.strip()
    if not stripped:
        return None, "empty expression"
    if "{{" not in stripped and "}}" not in stripped:
        return stripped, None
    errors = template_errors(stripped)
    if errors:
        return None, errors[0]
    if not (stripped.startswith("{{") and stripped.endswith("}}")) or stripped.count("{{") != 1:
        return None, "must be one expression, either bare or as a single '{{ ... }}' template"
    return stripped[2:-2].strip(), None


def _walk_strings(value: object, key: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_strings(v, f"{key}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk_strings(v, f"{key}[{i}]")


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_step(
    step: DagStep, ids: set[str], actions: frozenset[str], problems: list[Problem]
) -> DagStep:
    loc = step.location
    where = f"step {step.id!r}"
    bad = sorted({c for c in step.id if c in _ID_RESERVED or c.isspace()})
    if not step.id or bad:
        # The log names a matrix instance `id[i]`, a loop iteration `id#n` and the engine's
        # own deliveries `@...`: ids must not be able to collide with those.
        problems.append(
            problem_at(
                f"{where}: a step id must be non-empty, without spaces or any of '[]#@'"
                + (f" (found {', '.join(repr(c) for c in bad)})" if bad else ""),
                loc,
            )
        )
    if step.loop is not None and step.matrix:
        problems.append(
            problem_at(f"{where}: a step cannot have both `loop` and `matrix`", loc, "loop")
        )
    if step.action == "condition":
        for branch in ("then", "else"):
            targets = step.params.get(branch, [])
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                problems.append(
                    problem_at(
                        f"{where}: params.{branch} must be a list of step ids", loc, "params"
                    )
                )
                continue
            for target in targets:
                if target not in ids:
                    problems.append(
                        problem_at(
                            f"{where}: params.{branch} names unknown step {target!r}"
                            f"{_suggest(target, ids)}",
                            loc,
                            f"params.{branch}",
                        )
                    )
        if not isinstance(step.params.get("expression"), str):
            problems.append(
                problem_at(
                    f"{where}: a condition action needs params.expression (a JavaScript "
                    "expression)",
                    loc,
                    "params",
                )
            )
    problems.extend(_delay_params(step, where))
    problems.extend(_duration_problems(step, where))
    problems.extend(_queue_problems(step, where))
    # The loaders derive `kind` from the fields; the Python builder sets both, so check
    # that they agree and that a python target is importable-looking.
    needed = _KIND_NEEDS.get(step.kind)
    given = [f for f in ("script", "code", "function", "action") if getattr(step, f) is not None]
    if given != ([needed] if needed else []):
        expected = f"exactly `{needed}`" if needed else "none of script/code/function/action"
        problems.append(problem_at(f"{where}: a {step.kind} step sets {expected}", loc))
    elif step.kind == "python" and not _TARGET.fullmatch(step.function or ""):
        problems.append(
            problem_at(
                f"{where}: function must be 'module:function', got {step.function!r}",
                loc,
                "function",
            )
        )
    if step.action is not None and step.action not in actions:
        problems.append(
            problem_at(
                f"{where} uses unknown action {step.action!r}"
                f"{_suggest(step.action or '', actions)}; known: {', '.join(sorted(actions))}",
                loc,
                "action",
            )
        )
    for i, dep in enumerate(step.depends_on):
        if dep == step.id:
            problems.append(problem_at(f"{where} depends on itself", loc, f"depends_on[{i}]"))
        elif dep not in ids:
            problems.append(
                problem_at(
                    f"{where} depends on unknown step {dep!r}{_suggest(dep, ids)}",
                    loc,
                    f"depends_on[{i}]",
                )
            )
    if step.trigger_rule == "min_success":
        n = step.min_success
        if n is None or not 1 <= n <= len(step.depends_on):
            problems.append(
                problem_at(
                    f"{where}: min_success must be between 1 and its {len(step.depends_on)} "
                    f"dependencies, got {n}",
                    loc,
                    "min_success",
                )
            )
    elif step.min_success is not None:
        problems.append(
            problem_at(f"{where}: min_success needs trigger rule 'min_success'", loc, "min_success")
        )
    if step.on_error is not None and step.on_error not in ids:
        problems.append(
            problem_at(
                f"{where} falls back to unknown step {step.on_error!r}"
                f"{_suggest(step.on_error, ids)}",
                loc,
                "on_error",
            )
        )
    elif step.on_error == step.id:
        problems.append(problem_at(f"{where} falls back to itself", loc, "on_error"))
    fixed: dict[str, str | None] = {}
    for field in ("condition", "skip_if"):
        text = getattr(step, field)
        if text is None:
            continue
        expr, error = expression_of(text)
        if error:
            problems.append(problem_at(f"{where}: bad {field} expression: {error}", loc, field))
        fixed[field] = expr
    loop = step.loop
    if loop is not None:
        expr, error = expression_of(loop.until)
        if error:
            problems.append(problem_at(f"{where}: bad loop.until expression: {error}", loc, "loop"))
        elif expr != loop.until:
            loop = msgspec.structs.replace(loop, until=expr or "")
    for key, text in [
        *_walk_strings(templated_params(step), "params"),
        *_walk_strings(step.environment, "environment"),
    ]:
        for error in template_errors(text):
            problems.append(problem_at(f"{where}: bad template in {key}: {error}", loc, key))
    return msgspec.structs.replace(step, loop=loop, **fixed)


def _queue_problems(step: DagStep, where: str) -> list[Problem]:
    """A step's `queue`: a queue name, on a step that runs something itself (a loop over a
    body runs its body's steps, each of which can name a queue of its own)."""
    if step.queue is None:
        return []
    loc = step.location
    problem = id_problem("queue name", step.queue)
    if problem is not None:
        return [problem_at(f"{where}: {problem}", loc, "queue")]
    if step.loop is not None and step.loop.body:
        return [
            problem_at(
                f"{where}: a loop over a body cannot wait in a queue (its body's steps run, "
                "not the loop step); put `queue` on the body's steps instead",
                loc,
                "queue",
            )
        ]
    return []


def _delay_params(step: DagStep, where: str) -> list[Problem]:
    """What a delay would refuse at run time, found before anything runs.

    A templated value (`'{{ input.wait }}'`) is only known then, and is checked then."""
    loc, params = step.location, step.params
    if step.action == "delay":
        key = "duration" if "duration" in params or "ms" not in params else "ms"
        value = params.get(key)
        if value is None:
            return [
                problem_at(
                    f"{where}: a delay step needs params.duration, in milliseconds "
                    "(e.g. `params: {duration: 5000}`)",
                    loc,
                    "action",
                )
            ]
        templated = isinstance(value, str) and "{{" in value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not templated and not (number and math.isfinite(value) and value >= 0):
            return [
                problem_at(
                    f"{where}: params.{key} must be a number of milliseconds >= 0 (finite), "
                    f"got {value!r}",
                    loc,
                    f"params.{key}",
                )
            ]
    return []


# Params that hold JavaScript themselves: not templates (JS has its own braces).
_CODE_PARAMS = {"transform": "code", "condition": "expression"}


def templated_params(step: DagStep) -> dict[str, Any]:
    """The step's params that may hold `{{ }}` templates."""
    code = _CODE_PARAMS.get(step.action or "")
    if code is None:
        return step.params
    return {k: v for k, v in step.params.items() if k != code}


def find_cycle(steps: Sequence[DagStep]) -> list[str] | None:
    """A dependency cycle as [a, b, ..., a] (each needed by the next), or None.

    Searched from steps in declaration order so the same definition always reports the same
    cycle, starting at its earliest-declared member.
    """
    order = {s.id: i for i, s in enumerate(steps)}
    dependents: dict[str, list[str]] = {s.id: [] for s in steps}
    for s in steps:
        for dep in s.depends_on:
            if dep in dependents and dep != s.id:
                dependents[dep].append(s.id)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in order:
        if root in state:
            continue
        path: list[str] = [root]
        stack = [iter(dependents[root])]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                cycle = cycle[first:] + cycle[:first]
                return [*cycle, cycle[0]]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(dependents[nxt]))
    return None


def validate_definition(
    definition: DagDefinition, known_actions: Iterable[str] = ()
) -> DagDefinition:
    """Check everything; return the normalized definition or raise DagDefinitionError."""
    actions = BUILTIN_ACTIONS | frozenset(known_actions)
    problems: list[Problem] = []
    seen: dict[str, DagStep] = {}
    for step in definition.steps:
        first = seen.get(step.id)
        if first is not None:
            problems.append(
                problem_at(
                    f"duplicate step id {step.id!r} (first declared at line {first.location.line})",
                    step.location,
                )
            )
        else:
            seen[step.id] = step
    if not definition.steps:
        problems.append(problem_at("the definition has no steps", definition.source))
    ids = set(seen)
    steps = tuple(_check_step(s, ids, actions, problems) for s in definition.steps)
    for kind in ("on_success", "on_failure"):
        for note in getattr(definition.notifications, kind):
            needed = _NOTIFY_NEEDS[note.type]
            if not getattr(note, needed):
                problems.append(
                    problem_at(f"{kind} {note.type} notification needs `{needed}`", note.location)
                )
            for key, text in _walk_strings(msgspec.to_builtins(note), ""):
                for error in template_errors(text):
                    problems.append(
                        problem_at(
                            f"bad template in {kind} {note.type}{key}: {error}", note.location
                        )
                    )
    problems.extend(loop_problems(steps, ids))
    # Unknown ids are already reported and simply ignored here, so a cycle is reported
    # alongside them rather than after the user fixes everything else.
    cycle = find_cycle(steps)
    if cycle is not None:
        head = seen[cycle[1]]
        idx = head.depends_on.index(cycle[0])
        problems.append(
            problem_at(
                "dependency cycle: " + " → ".join(cycle) + " (each is needed by the next)",
                head.location,
                f"depends_on[{idx}]",
            )
        )
    if problems:
        raise DagDefinitionError(problems)
    return msgspec.structs.replace(definition, steps=steps)


def ordered(
    definition: DagDefinition, waits: Mapping[str, set[str]]
) -> tuple[list[str], list[str]]:
    """Step ids ordered so each comes after everything it waits for, ties broken by declaration
    order (the one order every scheduler decision uses); and the ids that could never be placed
    because their waits go round in a circle (empty when there is none)."""
    index = {s.id: i for i, s in enumerate(definition.steps)}
    dependents: dict[str, list[str]] = {s.id: [] for s in definition.steps}
    for step_id, needs in waits.items():
        for need in needs:
            dependents[need].append(step_id)
    remaining = {k: len(v) for k, v in waits.items()}
    ready = [index[k] for k, n in remaining.items() if n == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        step_id = definition.steps[heapq.heappop(ready)].id
        out.append(step_id)
        for nxt in dependents[step_id]:
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                heapq.heappush(ready, index[nxt])
    return out, [s.id for s in definition.steps if remaining[s.id] > 0]


def topological_order(definition: DagDefinition) -> list[str]:
    """Step ids in the one order a scheduler may use: ready steps by declaration order."""
    out, stuck = ordered(definition, {s.id: set(s.depends_on) for s in definition.steps})
    if stuck:
        raise ValueError("the definition has a cycle; validate it first")
    return out


def parallel_levels(definition: DagDefinition) -> list[list[str]]:
    """Groups of steps that can run together: level = 1 + the deepest dependency's level."""
    level: dict[str, int] = {}
    by_id = {s.id: s for s in definition.steps}
    for step_id in topological_order(definition):
        deps = by_id[step_id].depends_on
        level[step_id] = 1 + max((level[d] for d in deps), default=-1)
    groups: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for s in definition.steps:  # declaration order inside a level
        groups[level[s.id]].append(s.id)
    return groups


def _duration_problems(step: DagStep, where: str) -> list[Problem]:
    """A NaN or infinite timeout or retry delay would fail every attempt at once or never
    fire: refused with the definition (see durable._durations)."""
    found = []
    fields: list[tuple[str, object]] = [
        ("timeout", step.timeout_seconds),
        ("retry.initial_delay_ms", step.retry.initial_delay_ms),
        ("retry.max_delay_ms", step.retry.max_delay_ms),
        ("retry.multiplier", step.retry.multiplier),
    ]
    for name, value in fields:
        if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
            found.append(
                problem_at(
                    f"{where}: {name} must be a finite number >= 0, got {value!r}",
                    step.location,
                    name.split(".")[0],
                )
            )
    return found
