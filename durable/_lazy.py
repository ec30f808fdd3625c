"""Third-party modules that only some runs use (httpx for HTTP steps and notifications, PyYAML
for YAML definitions), loaded on first attribute access instead of at import: `import sdk`
and the CLI's commands don't pay for them. The standard library's LazyLoader does the work.

Use as:

    if TYPE_CHECKING:
        import httpx
    else:
        httpx = lazy_module("httpx")
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


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
