"""Entry points: text or file -> validated DagDefinition, whatever the format."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ._json import parse_json
from ._model import DagDefinition
from ._problems import DagDefinitionError, Problem
from ._source import MAX_DEFINITION_BYTES, too_big
from ._validate import validate_definition

Format = Literal["yaml", "json"]


def _guess(text: str, file: str | None) -> Format:
    suffix = Path(file).suffix.lower() if file else ""
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    if suffix == ".json":
        return "json"
    # No telling extension: JSON documents start with an object; anything else is YAML
    # (a JSON object is valid YAML too, but the JSON loader reads the camelCase format).
    return "json" if text.lstrip().startswith("{") else "yaml"


def parse_definition(
    text: str,
    file: str | None = None,
    *,
    format: Format | None = None,
    known_actions: Iterable[str] = (),
) -> DagDefinition:
    """Parse and validate a definition; `known_actions` are the user-registered actions."""
    kind = format or _guess(text, file)
    if kind == "json":
        parsed = parse_json(text, file)
    else:
        from ._yaml import parse_yaml  # PyYAML: only for YAML definitions

        parsed = parse_yaml(text, file)
    return validate_definition(parsed, known_actions)


def load_definition(
    path: str | Path, *, known_actions: Iterable[str] = (), format: Format | None = None
) -> DagDefinition:
    file = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_DEFINITION_BYTES:  # before reading it: the file may be any size
            raise DagDefinitionError([too_big(size, file)])
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DagDefinitionError([Problem(f"cannot read the definition: {exc}", file)]) from exc
    return parse_definition(text, file, format=format, known_actions=known_actions)
