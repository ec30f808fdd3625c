"""Checks a definition must pass before a run of it starts, beyond what validation of the model
can see: script files on disk, and the syntax of its JavaScript (compiled by V8 in a sandbox
subprocess, never in this process, exactly as the run would compile it).

`durable validate` and `durable run` (with or without --dry-run) run these, so a definition
that could only fail is refused before anything is written, with the file and line of each
problem, rather than recorded as a failed run with every step pending.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Iterable
from pathlib import Path

from durable.js import JsSandboxPool, SandboxError

from ._expr import has_javascript, syntax_problems
from ._model import DagDefinition, DagStep
from ._problems import Problem, problem_at
from ._program import DagProgram
from ._queued import undeclared_queues

# A first word with any of these is expanded by the shell: only the run can tell the file.
_SHELL_SYNTAX = frozenset("$`~*?[]{}=")


def script_file_problems(definition: DagDefinition) -> list[Problem]:
    """Script steps whose program is a file (a path, or a `.py` file, which the engine runs
    with its own interpreter) that does not exist or cannot be run, relative to the
    definition's directory like the run itself. A plain command (`echo`, `python3 x.py`)
    is the shell's to find, and is not checked."""
    base = DagProgram(definition).base_dir
    if base is None:
        return []  # not from a file: there is no directory to look in
    return [p for step in definition.steps if (p := _script_file(step, Path(base)))]


def _script_file(step: DagStep, base: Path) -> Problem | None:
    if step.kind != "script" or not step.script:
        return None
    try:
        words = shlex.split(step.script, comments=True)
    except ValueError:
        return None  # unbalanced quotes: the shell reports that better
    if not words:
        return None
    program = words[0]
    is_python = program.endswith(".py")
    if not (is_python or "/" in program) or _SHELL_SYNTAX & set(program):
        return None
    path = base / program
    where = f"step {step.id!r}: script file {program!r}"
    if not path.exists():
        return problem_at(
            f"{where} does not exist (looked for {path}: a script's path is relative to the "
            "definition's directory; if an earlier step creates it, run it through its "
            f"interpreter, e.g. `{'python' if is_python else 'sh'} {program}`)",
            step.location,
            "script",
        )
    if path.is_dir():
        return problem_at(f"{where} is a directory ({path})", step.location, "script")
    if not is_python and not os.access(path, os.X_OK):
        return problem_at(
            f"{where} is not executable ({path}): `chmod +x` it, or run it with its "
            f"interpreter (`sh {program}`)",
            step.location,
            "script",
        )
    return None


async def javascript_problems(definition: DagDefinition) -> list[Problem]:
    """Syntax errors of every expression, template and code the definition holds, compiled
    in a one-sandbox pool started for this check (none when there is no JavaScript)."""
    if not has_javascript(definition):
        return []
    try:
        async with JsSandboxPool(1) as pool:
            return await syntax_problems(definition, pool)
    except SandboxError as exc:
        # The check could not run: say so rather than pass a definition nobody checked.
        return [
            problem_at(
                f"cannot check the definition's JavaScript: the sandbox failed ({exc})",
                definition.source,
            )
        ]


def preflight(definition: DagDefinition, queues: Iterable[str] = ()) -> list[Problem]:
    """Every problem that would make a run of `definition` fail before its first step,
    in file order. `queues`: those the application declares (a queue nobody declares is
    refused: its steps would wait forever)."""
    found = script_file_problems(definition) + undeclared_queues(definition, queues)
    found += asyncio.run(javascript_problems(definition))
    return sorted(found, key=lambda p: (p.line is None, p.line or 0))
