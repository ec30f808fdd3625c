"""A definition's problems: what is wrong, in which file, at which line and path."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from durable._errors import WorkflowDefinitionError

from ._model import FieldSpot, Location


class Problem(msgspec.Struct, frozen=True):
    message: str
    file: str | None = None
    line: int | None = None
    path: str = "$"

    def __str__(self) -> str:
        where = self.file or "<definition>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message} (at {self.path})"


class DagDefinitionError(WorkflowDefinitionError):
    """A DAG definition is invalid. `message/file/line/path` describe the first problem;
    `problems` holds all of them, so one run of the loader reports everything it can."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("DagDefinitionError needs at least one problem")
        self.problems = tuple(problems)
        first = self.problems[0]
        self.message = first.message
        self.file = first.file
        self.line = first.line
        self.path = first.path
        text = str(first)
        if len(self.problems) > 1:
            text += "".join(f"\n  also: {p}" for p in self.problems[1:])
        super().__init__(text)


def problem_at(message: str, loc: Location, key: str | None = None) -> Problem:
    spot = loc.spot(key) if key else FieldSpot(loc.path, loc.line)
    return Problem(message, loc.file, spot.line, spot.path)
