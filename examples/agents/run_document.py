"""Run one of the agent workflow document's examples: `python examples/agents/run_document.py
document/streaming.py` (a path relative to this directory, or any path).

The document writes its snippets like a notebook, with `await` at the top level; this runs a
file the way `python -m asyncio` runs what is typed into it: compiled with top-level await
allowed, as __main__, with this directory and the file's own on sys.path, after importing
services.py (the tools and agents the document names without defining them).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: python examples/agents/run_document.py document/<example>.py", file=sys.stderr
        )
        return 2
    path = Path(argv[0])
    if not path.is_file():
        path = HERE / argv[0]
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in (HERE / "document").glob("*.py")))
        print(f"no example {argv[0]!r}; the examples: {known}", file=sys.stderr)
        return 2
    sys.path[:0] = [str(path.parent), str(HERE)]
    # The tools and agents the document names but never defines, registered by name.
    __import__("services")
    code = compile(path.read_text(), str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(path)}
    outcome = eval(code, namespace)  # a coroutine when the file awaits at its top level
    if inspect.iscoroutine(outcome):
        asyncio.run(outcome)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
