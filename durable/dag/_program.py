"""A DAG definition together with what only Python can supply: the integration functions its
JavaScript steps may call (the Python builder's `api`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._model import DagDefinition


@dataclass(frozen=True, slots=True)
class DagProgram:
    definition: DagDefinition
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    @property
    def base_dir(self) -> str | None:
        """Scripts and relative paths resolve against the definition file's directory."""
        file = self.definition.source.file
        return str(Path(file).resolve().parent) if file else None
