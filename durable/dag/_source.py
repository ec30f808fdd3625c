"""What the YAML and JSON loaders share: source paths, line maps and typed conversion."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, TypeVar

import msgspec

from ._model import FieldSpot, Location, StepKind
from ._problems import DagDefinitionError, Problem

# Constrained numbers both file formats declare their fields with.
Count = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Amount = Annotated[float, msgspec.Meta(gt=0)]

T = TypeVar("T")
Path = tuple[str | int, ...]
LineMap = dict[Path, int]  # every key and item of the document -> its 1-based line

_AT = re.compile(r" - at `(\$[^`]*)`$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")


def path_str(path: Path) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def line_of(lines: LineMap, path: Path) -> int | None:
    """The line of `path`, or of its nearest enclosing element that has one."""
    for end in range(len(path), -1, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None


def fail(message: str, file: str | None, lines: LineMap, path: Path) -> DagDefinitionError:
    return DagDefinitionError([Problem(message, file, line_of(lines, path), path_str(path))])


def convert(
    data: Any,
    kind: type[T],
    *,
    file: str | None,
    lines: LineMap,
    at: Path,
    vocabulary: Iterable[str] = (),
) -> T:
    """msgspec.convert, with its error mapped back to the source path and line."""
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        rel: Path = ()
        match = _AT.search(text)
        if match:
            text = text[: match.start()]
            parts: list[str | int] = []
            for name, index in _PART.findall(match.group(1)):
                if index == "...":  # msgspec hides dict keys; stop at the enclosing mapping
                    break
                parts.append(int(index) if index else name)
            rel = tuple(parts)
        unknown = _UNKNOWN.search(text)
        if unknown:
            rel = (*rel, unknown.group(1))
            close = difflib.get_close_matches(unknown.group(1), sorted(set(vocabulary)), n=1)
            if close:
                text += f" (did you mean {close[0]!r}?)"
        raise fail(f"wrong type: {text}", file, lines, (*at, *rel)) from None


def field_names(*structs: type[msgspec.Struct]) -> set[str]:
    """Source spellings of the fields of `structs` (after rename), for typo suggestions."""
    names: set[str] = set()
    for struct in structs:
        names.update(f.encode_name for f in msgspec.structs.fields(struct))
    return names


def group_lines(lines: LineMap, depth: int) -> dict[Path, LineMap]:
    """Split a line map by the first `depth` path components, so building one Location per
    step costs the step's own lines rather than a scan of the whole document each time."""
    groups: dict[Path, LineMap] = {}
    for path, line in lines.items():
        if len(path) >= depth:
            groups.setdefault(path[:depth], {})[path] = line
    return groups


def location(
    file: str | None, lines: LineMap, prefix: Path, rename: Mapping[str, str] = {}
) -> Location:
    """A Location for the element at `prefix`, with a spot for every field under it.

    Field keys are written in model terms (the first component renamed from the source
    spelling), so validation of the model can ask for "depends_on[1]" whatever the format.
    """
    fields: dict[str, FieldSpot] = {}
    n = len(prefix)
    for path, line in lines.items():
        if len(path) <= n or path[:n] != prefix:
            continue
        head = path[n]
        key = rename.get(str(head), str(head))
        for part in path[n + 1 :]:
            key += f"[{part}]" if isinstance(part, int) else f".{part}"
        fields[key] = FieldSpot(path_str(path), line)
    return Location(file, line_of(lines, prefix), path_str(prefix), fields)


def kind_of(
    *, script: str | None, code: str | None, function: str | None, action: str | None
) -> tuple[StepKind, str | None]:
    """The step kind from the one field that says what to run; (kind, error)."""
    given = {
        "script": script,
        "code": code,
        "function": function,
        "action": action,
    }
    present = [k for k, v in given.items() if v is not None]
    if len(present) > 1:
        return "noop", f"sets {' and '.join(present)}; a step runs exactly one of them"
    if not present:
        # 003's CI/CD example declares steps with no action: they are markers that succeed.
        return "noop", None
    kinds: dict[str, StepKind] = {
        "script": "script",
        "code": "javascript",
        "function": "python",
        "action": "action",
    }
    return kinds[present[0]], None
