"""What the YAML and JSON loaders share: source paths, line maps and typed conversion."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, TypeVar

import msgspec
import msgspec.inspect as mi

from ._model import FieldSpot, Location, StepKind
from ._problems import DagDefinitionError, Problem

# Constrained numbers both file formats declare their fields with.
Count = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Amount = Annotated[float, msgspec.Meta(gt=0)]

T = TypeVar("T")
Path = tuple[str | int, ...]
LineMap = dict[Path, int]  # every key and item of the document -> its 1-based line

# Bounds on what a definition may cost to read, whatever its format (see `check_size`).
MAX_DEFINITION_BYTES = 1024 * 1024
# Values (keys, items, scalars) of the document once YAML aliases are expanded: the model,
# its fingerprint and every copy of it are as big as this, not as the text.
MAX_VALUES = 100_000
MAX_DEPTH = 100  # nested mappings/lists; the loaders and msgspec recurse once per level

_AT = re.compile(r" - at `(\$[^`]*)`$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]*)`")


def check_size(text: str, file: str | None) -> None:
    """Refuse a definition text over MAX_DEFINITION_BYTES (UTF-8), before parsing it."""
    if len(text) * 4 > MAX_DEFINITION_BYTES:  # only then can it be over: encode to know
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_DEFINITION_BYTES:
            raise DagDefinitionError([too_big(size, file)])


def too_big(size: int, file: str | None) -> Problem:
    return Problem(
        f"the definition is {size / (1024 * 1024):.1f} MiB, larger than the "
        f"{MAX_DEFINITION_BYTES // (1024 * 1024)} MiB limit for a workflow definition",
        file,
    )


def too_deep(file: str | None, line: int | None, path: str = "$") -> Problem:
    return Problem(
        f"the document is nested more than {MAX_DEPTH} levels deep (the limit for a "
        "workflow definition)",
        file,
        line,
        path,
    )


def too_many(file: str | None, line: int | None, how: str = "(keys, items and scalars)") -> Problem:
    return Problem(
        f"the document holds more than {MAX_VALUES:,} values {how}, the limit for a workflow "
        "definition",
        file,
        line,
    )


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
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(
                f"unknown key {unknown.group(1)!r}{hint}", file, lines, (*at, *rel)
            ) from None
        raise fail(f"wrong type: {text}", file, lines, (*at, *rel)) from None


def in_order(problems: Iterable[Problem]) -> list[Problem]:
    """Problems in document order (those without a line last)."""
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


_MISSING = re.compile(r"missing required field `([^`]*)`")


def without_echoes(unknown: list[Problem], found: Iterable[Problem]) -> list[Problem]:
    """`found` without "missing required field X" where an unknown key already suggested X:
    `max_iteration: 3` is one mistake, not two."""
    suggested = {
        (p.path.rpartition(".")[0], m.group(1))
        for p in unknown
        if (m := re.search(r"did you mean '([^']*)'", p.message))
    }
    return [
        p
        for p in found
        if not ((m := _MISSING.search(p.message)) and (p.path, m.group(1)) in suggested)
    ]


def unknown_keys(
    data: Any, kind: type[msgspec.Struct], *, file: str | None, lines: LineMap, at: Path
) -> tuple[Any, list[Problem]]:
    """Every key of `data` that `kind` (and the structs nested in it) does not know, each a
    problem at its own line with a suggestion; and `data` without them, so a conversion
    after this reports the other mistakes of the same document instead of the first key."""
    problems: list[Problem] = []
    cleaned = _known(data, mi.type_info(kind), at, file, lines, problems)
    return cleaned, problems


def _known(
    data: Any, info: mi.Type, at: Path, file: str | None, lines: LineMap, out: list[Problem]
) -> Any:
    if isinstance(info, mi.UnionType):
        structs = [t for t in info.types if isinstance(t, mi.StructType)]
        if len(structs) == 1 and isinstance(data, dict):
            return _known(data, structs[0], at, file, lines, out)
        return data
    if isinstance(info, mi.StructType) and isinstance(data, dict):
        fields = {f.encode_name: f for f in info.fields}
        kept: dict[Any, Any] = {}
        for key, value in data.items():
            field = fields.get(key) if isinstance(key, str) else None
            if field is None:
                close = difflib.get_close_matches(str(key), sorted(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                sub = (*at, str(key))
                out.append(
                    Problem(f"unknown key {key!r}{hint}", file, line_of(lines, sub), path_str(sub))
                )
                continue
            kept[key] = _known(value, field.type, (*at, key), file, lines, out)
        return kept
    if isinstance(info, mi.ListType | mi.TupleType | mi.VarTupleType) and isinstance(data, list):
        item = info.item_type if not isinstance(info, mi.TupleType) else None
        if item is None:
            return data
        return [_known(v, item, (*at, i), file, lines, out) for i, v in enumerate(data)]
    if isinstance(info, mi.DictType) and isinstance(data, dict):
        return {
            k: _known(v, info.value_type, (*at, str(k)), file, lines, out) for k, v in data.items()
        }
    return data


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
