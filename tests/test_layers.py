"""The tree's layering holds: storage <- durable <- sdk, and inside durable/runtime each module
imports only those below it (durable/runtime/__init__.py lists the order). Every import counts,
including those under `if TYPE_CHECKING:` and inside functions: a circle hidden from the
interpreter is still a circle for a reader."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Bottom first: a module may import only modules before it in this list.
RUNTIME_ORDER = [
    "_external",
    "_context",
    "_registry",
    "_stops",
    "_guard",
    "_streams",
    "_order",
    "_waits",
    "_select",
    "_step_runner",
    "_child_starts",
    "_watch",
    "_continue",
    "_markers",
    "_values",
    "_updates",
    "_child_commands",
    "_executor",
]

# durable/flow (the builder of seed 004), likewise.
FLOW_ORDER = [
    "_context",
    "_results",
    "_steps",
    "_resolve",
    "_fingerprint",
    "_plan",
    "_parallel",
    "_run",
    "_report",
    "_workflow",
]

# durable/schedules, likewise.
SCHEDULES_ORDER = ["_cron", "_spec", "_plan", "_fire", "_control", "_loop"]

# durable/queues, likewise.
QUEUES_ORDER = ["_spec", "_options", "_control", "_declare", "_debounce", "_cancel"]


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            # `from durable.runtime import _executor` imports a module too.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_runtime_does_not_import_what_sits_above_it() -> None:
    """The worker, the client, the CLI, the API and the SDK use the runtime, never the reverse."""
    above = ("durable._worker", "durable._client", "durable.cli", "durable.api", "sdk")
    problems = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "durable" / "runtime").glob("*.py")
        for module in imported_modules(path)
        if module.startswith(above)
    ]
    assert problems == []


def test_storage_imports_neither_durable_nor_sdk_and_durable_not_sdk() -> None:
    problems = [
        f"{path.relative_to(ROOT)} imports {module}"
        for package, forbidden in (("storage", ("durable", "sdk")), ("durable", ("sdk",)))
        for path in (ROOT / package).rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] in forbidden
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("package", "order"),
    [("runtime", RUNTIME_ORDER), ("flow", FLOW_ORDER), ("schedules", SCHEDULES_ORDER)],
)
def test_a_packages_modules_import_only_those_below_them(package: str, order: list[str]) -> None:
    """Each module of durable/<package> imports only the modules listed before it."""
    folder = ROOT / "durable" / package
    found = sorted(p.stem for p in folder.glob("_*.py") if p.stem != "__init__")
    assert found == sorted(order), f"list every module of durable/{package} in its ORDER"
    problems = []
    for rank, name in enumerate(order):
        above = {f"durable.{package}.{n}" for n in order[rank:]}
        for module in imported_modules(folder / f"{name}.py") & above:
            problems.append(f"durable/{package}/{name}.py imports {module}")
    assert problems == []


def test_queues_modules_import_only_those_below_them() -> None:
    package = ROOT / "durable" / "queues"
    found = sorted(p.stem for p in package.glob("_*.py") if p.stem != "__init__")
    assert found == sorted(QUEUES_ORDER), "list every module of durable/queues"
    problems = []
    for rank, name in enumerate(QUEUES_ORDER):
        above = {f"durable.queues.{n}" for n in QUEUES_ORDER[rank:]}
        for module in imported_modules(package / f"{name}.py") & above:
            problems.append(f"durable/queues/{name}.py imports {module}")
    assert problems == []
