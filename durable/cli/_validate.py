"""`durable validate FILE`: check a DAG definition file and show its plan, running nothing."""

from __future__ import annotations

import sys

import click
import msgspec

from durable.cli._app import cli, emit_json
from durable.dag import DagDefinitionError, load_definition, parallel_levels


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


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--action",
    "actions",
    multiple=True,
    metavar="NAME",
    help="An action your application registers (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def validate(file: str, actions: tuple[str, ...], as_json: bool) -> None:
    """Check a YAML or JSON workflow definition: structure, types, dependencies (cycles,
    unknown steps), actions and {{ }} templates. Prints the plan: which steps can run
    together, group by group. Runs nothing. Exit status: 0 valid, 2 invalid."""
    try:
        definition = load_definition(file, known_actions=actions)
    except DagDefinitionError as exc:
        problems = [str(p) for p in exc.problems]
        if as_json:
            emit_json(ValidationReport(file=file, valid=False, problems=problems))
        else:
            # One line per problem (each names its file and line), like every user error.
            for problem in problems:
                click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    levels = parallel_levels(definition)
    report = ValidationReport(
        file=file,
        valid=True,
        name=definition.name,
        version=definition.version,
        steps=len(definition.steps),
        fingerprint=definition.fingerprint(),
        levels=levels,
    )
    if as_json:
        emit_json(report)
        return
    # Plain lines, not rich: a long line (the fingerprint) must not be wrapped when piped.
    click.echo(
        f"{file}: valid — {report.name} version {report.version}, {report.steps} steps, "
        f"fingerprint {report.fingerprint}"
    )
    click.echo("plan (steps on one line can run together):")
    for i, level in enumerate(levels, start=1):
        click.echo(f"  {i}. {', '.join(level)}")
