"""Third-party modules that only some runs use (httpx for HTTP steps and notifications, PyYAML
for YAML definitions), loaded on first attribute access instead of at import: `import sdk`
and the CLI's commands don't pay for them. The standard library's LazyLoader does the work.

Use as:

    if TYPE_CHECKING:
        import httpx
    else:
        httpx = lazy_module("httpx")

Packages' public names load on first use the same way (PEP 562): `lazy_names` makes the
`__getattr__` and `__dir__` of a package `__init__` that lists where each name lives.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, MutableMapping
from types import ModuleType
from typing import Any


def lazy_module(name: str) -> ModuleType:
    """The module `name`, executed when one of its attributes is first read."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:  # not installed: fail as the import would
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


def lazy_names(
    package: str, where: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public names live in `where`'s modules;
    a loaded name is stored in `namespace` (the package's globals), so later reads are plain."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
