"""Loops over a sub-graph: which steps form a loop's body, and the graphs the scheduler sees.

A step with `loop.body` is a group. Its body steps belong to it alone: they depend only on
each other (the body's entry steps run once the loop step's own dependencies allow the loop
to start), nothing outside depends on them (depend on the loop step instead), and they are
scheduled per iteration, never at the top level. So the run's scheduler works on the
*top-level* definition (the body steps removed), and each iteration on its *body* definition.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._model import DagDefinition, DagStep, Location
from ._problems import Problem, problem_at


def loop_owners(steps: Iterable[DagStep]) -> dict[str, str]:
    """body step id -> the id of the loop step whose body it is in (first claim wins)."""
    owners: dict[str, str] = {}
    for step in steps:
        if step.loop is not None:
            for member in step.loop.body:
                owners.setdefault(member, step.id)
    return owners


def top_level(definition: DagDefinition) -> DagDefinition:
    """The definition as the run's scheduler sees it: every loop body folded into its loop."""
    owners = loop_owners(definition.steps)
    if not owners:
        return definition
    steps = tuple(s for s in definition.steps if s.id not in owners)
    return msgspec.structs.replace(definition, steps=steps)


def body_definition(definition: DagDefinition, loop_step: DagStep) -> DagDefinition:
    """One iteration of `loop_step` as a definition of its own (declaration order kept)."""
    assert loop_step.loop is not None and loop_step.loop.body
    members = set(loop_step.loop.body)
    return DagDefinition(
        name=f"{definition.name}/{loop_step.id}",
        version=definition.version,
        steps=tuple(s for s in definition.steps if s.id in members),
        config=definition.config,
        source=Location(definition.source.file, loop_step.location.line),
    )


def loop_problems(steps: Iterable[DagStep], ids: set[str]) -> list[Problem]:
    """Everything wrong with the definition's loop bodies and the edges that cross them."""
    steps = list(steps)
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    for step in steps:
        if step.loop is None or not step.loop.body:
            continue
        where, loc = f"step {step.id!r}", step.location
        if step.kind != "noop":
            problems.append(
                problem_at(
                    f"{where} loops over a body, so it is a group and does no work itself: "
                    f"move its {step.kind} into a body step",
                    loc,
                    "loop.body",
                )
            )
        for i, member in enumerate(step.loop.body):
            key = f"loop.body[{i}]"
            if member == step.id:
                problems.append(problem_at(f"{where}: a loop's body cannot hold itself", loc, key))
            elif member not in ids:
                problems.append(
                    problem_at(f"{where}: loop.body names unknown step {member!r}", loc, key)
                )
            elif member in owners:
                first = owners[member]
                problems.append(
                    problem_at(
                        f"{where}: step {member!r} is already in the body of loop {first!r}"
                        + (" (listed twice)" if first == step.id else ""),
                        loc,
                        key,
                    )
                )
            else:
                owners[member] = step.id
    for step in steps:
        problems.extend(_crossings(step, owners))
    return problems


def _crossings(step: DagStep, owners: dict[str, str]) -> list[Problem]:
    """Edges from `step` that leave its group (the run's top level, or one loop's body)."""
    where, loc = f"step {step.id!r}", step.location
    group = owners.get(step.id)
    out: list[Problem] = []
    if group is not None and (step.matrix or step.loop is not None):
        what = "a matrix" if step.matrix else "a loop"
        out.append(
            problem_at(
                f"{where} is in the body of loop {group!r} and cannot have {what} itself "
                "(loops and matrices nest only as separate runs for now)",
                loc,
                "matrix" if step.matrix else "loop",
            )
        )
    for i, dep in enumerate(step.depends_on):
        there = owners.get(dep)
        if there == group:
            continue
        if group is None:
            fix = f"depend on the loop step {there!r} instead"
        elif dep == group:
            fix = "a body step runs inside its loop and needs no dependency on it"
        else:
            fix = (
                "a body step depends only on steps of its own body; make loop "
                f"{group!r} depend on {there or dep!r}"
            )
        inside = f"in the body of loop {there!r}" if there is not None else "outside the loop"
        out.append(
            problem_at(f"{where} depends on {dep!r}, {inside}: {fix}", loc, f"depends_on[{i}]")
        )
    if step.on_error is not None and owners.get(step.on_error) != group:
        out.append(
            problem_at(
                f"{where} falls back to {step.on_error!r}, which is not in the same "
                + ("loop body" if group is not None else "graph (it is inside a loop body)"),
                loc,
                "on_error",
            )
        )
    if step.action == "condition":
        for branch in ("then", "else"):
            targets = step.params.get(branch)
            for target in targets if isinstance(targets, list) else []:
                if isinstance(target, str) and owners.get(target) != group:
                    out.append(
                        problem_at(
                            f"{where}: params.{branch} names {target!r}, which is not in the "
                            "same loop body as the condition (branches stay inside one graph)",
                            loc,
                            f"params.{branch}",
                        )
                    )
    return out
