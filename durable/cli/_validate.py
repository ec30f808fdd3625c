"""`durable validate FILE`: check a DAG definition file and show its plan, running nothing.

`load_or_exit` and `plan_report`/`print_plan` are shared with `durable run` (its --dry-run
and its definition errors), so both commands report problems and plans the same way."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import NoReturn

import click
import msgspec

from durable.cli._app import USER_ERROR, cli, emit_json
from durable.dag import (
    DagDefinition,
    DagDefinitionError,
    body_definition,
    load_definition,
    parallel_levels,
    top_level,
)
from durable.dag._preflight import preflight
from durable.dag._report import matrix_combos


class ValidationReport(msgspec.Struct, frozen=True):
    """The --json shape: what was checked and the order it would run in."""

    file: str
    valid: bool
    name: str | None = None
    version: str | None = None
    steps: int = 0
    fingerprint: str | None = None
    # Groups of steps that can run together, in the order the groups start.
    levels: list[list[str]] = []
    problems: list[str] = []
    # Step id -> number of instances, for steps with a matrix.
    matrix: dict[str, int] = {}
    # Loop step id -> its body's levels, for loops over a body (their steps are not in
    # `levels`: they run inside the loop, once per iteration).
    bodies: dict[str, list[list[str]]] = {}


def load_or_exit(
    file: str, actions: Iterable[str], *, as_json: bool = False, queues: Iterable[str] = ()
) -> DagDefinition:
    """The validated definition, checked as a run would check it before its first step
    (script files, JavaScript syntax); or the problems reported (one `error:` line each, or
    an invalid ValidationReport with --json) and exit status 2."""
    try:
        definition = load_definition(file, known_actions=actions)
    except DagDefinitionError as exc:
        report_problems(file, [str(p) for p in exc.problems], as_json=as_json)
    # What only the run would otherwise find (script files, JavaScript syntax): a run of
    # this definition could only fail, so it is refused before anything is written.
    problems = preflight(definition, queues)
    if problems:
        report_problems(file, [str(p) for p in problems], as_json=as_json)
    return definition


def report_problems(file: str, problems: list[str], *, as_json: bool) -> NoReturn:
    if as_json:
        emit_json(ValidationReport(file=file, valid=False, problems=problems))
    else:
        # One line per problem (each names its file and line), like every user error.
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
    sys.exit(USER_ERROR)


def plan_report(file: str, definition: DagDefinition) -> ValidationReport:
    return ValidationReport(
        file=file,
        valid=True,
        name=definition.name,
        version=definition.version,
        steps=len(definition.steps),
        fingerprint=definition.fingerprint(),
        levels=parallel_levels(top_level(definition)),
        matrix={s.id: len(matrix_combos(s)) for s in definition.steps if s.matrix},
        bodies={
            s.id: parallel_levels(body_definition(definition, s))
            for s in definition.steps
            if s.loop is not None and s.loop.body
        },
    )


def print_plan(report: ValidationReport, definition: DagDefinition) -> None:
    # Plain lines, not rich: a long line (the fingerprint) must not be wrapped when piped.
    click.echo(
        f"{report.file}: valid — {report.name} version {report.version}, "
        f"{report.steps} step{'' if report.steps == 1 else 's'}, "
        f"fingerprint {report.fingerprint}"
    )
    click.echo("plan (steps on one line can run together):")
    loops = {s.id: s.loop.max_iterations for s in definition.steps if s.loop is not None}
    for i, level in enumerate(report.levels, start=1):
        shown = []
        for step_id in level:
            label = step_id
            if step_id in report.matrix:
                label += f" ×{report.matrix[step_id]}"
            body = report.bodies.get(step_id)
            if body is not None:
                inside = " → ".join(", ".join(level) for level in body)
                label += f" (loop over {inside}, at most {loops[step_id]} times)"
            elif step_id in loops:
                label += f" (loop, at most {loops[step_id]} times)"
            shown.append(label)
        click.echo(f"  {i}. {', '.join(shown)}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--action",
    "actions",
    multiple=True,
    metavar="NAME",
    help="An action your application registers (repeatable).",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help="A queue your application declares (app.queue), for steps that name it (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(file: str, actions: tuple[str, ...], queues: tuple[str, ...], as_json: bool) -> None:
    """Check a YAML or JSON workflow definition: structure, types, dependencies (cycles,
    unknown steps), actions, script files, and the JavaScript of expressions and {{ }}
    templates (compiled in a sandbox, never run). Prints the plan: which steps can run
    together, group by group (a matrix step shows its number of instances). Runs nothing.
    Exit status: 0 valid, 2 invalid."""
    definition = load_or_exit(file, actions, as_json=as_json, queues=queues)
    report = plan_report(file, definition)
    if as_json:
        emit_json(report)
        return
    print_plan(report, definition)
