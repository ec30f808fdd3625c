"""The tree's layering holds: storage <- durable <- sdk, and inside durable/runtime each module
imports only those below it (durable/runtime/__init__.py lists the order). Every import counts,
including those under `if TYPE_CHECKING:` and inside functions: a circle hidden from the
interpreter is still a circle for a reader."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Bottom first: a module may import only modules before it in this list.
RUNTIME_ORDER = [
    "_context",
    "_registry",
    "_stops",
    "_order",
    "_waits",
    "_select",
    "_step_runner",
    "_child_starts",
    "_watch",
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
QUEUES_ORDER = ["_spec", "_options", "_control", "_declare"]


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


def test_runtime_modules_import_only_those_below_them() -> None:
    runtime = ROOT / "durable" / "runtime"
    found = sorted(p.stem for p in runtime.glob("_*.py") if p.stem != "__init__")
    assert found == sorted(RUNTIME_ORDER), "list the new module in RUNTIME_ORDER"
    problems = []
    for rank, name in enumerate(RUNTIME_ORDER):
        above = {f"durable.runtime.{n}" for n in RUNTIME_ORDER[rank:]}
        for module in imported_modules(runtime / f"{name}.py") & above:
            problems.append(f"durable/runtime/{name}.py imports {module}")
    assert problems == []


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


def test_flow_modules_import_only_those_below_them() -> None:
    flow = ROOT / "durable" / "flow"
    found = sorted(p.stem for p in flow.glob("_*.py") if p.stem != "__init__")
    assert found == sorted(FLOW_ORDER), "list every module of durable/flow in FLOW_ORDER"
    problems = []
    for rank, name in enumerate(FLOW_ORDER):
        above = {f"durable.flow.{n}" for n in FLOW_ORDER[rank:]}
        for module in imported_modules(flow / f"{name}.py") & above:
            problems.append(f"durable/flow/{name}.py imports {module}")
    assert problems == []


def test_schedules_modules_import_only_those_below_them() -> None:
    package = ROOT / "durable" / "schedules"
    found = sorted(p.stem for p in package.glob("_*.py") if p.stem != "__init__")
    assert found == sorted(SCHEDULES_ORDER), "list every module of durable/schedules"
    problems = []
    for rank, name in enumerate(SCHEDULES_ORDER):
        above = {f"durable.schedules.{n}" for n in SCHEDULES_ORDER[rank:]}
        for module in imported_modules(package / f"{name}.py") & above:
            problems.append(f"durable/schedules/{name}.py imports {module}")
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
