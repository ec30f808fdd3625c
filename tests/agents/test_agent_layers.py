"""durable/agents keeps its own order (its __init__ lists it): each module imports only those
before it, the runtime below it, and nothing above it (the worker, the client, the SDK)."""

from __future__ import annotations

from test_layers import ROOT, imported_modules

AGENTS_ORDER = ["_records", "_tools", "_steps", "_approvals", "_capability", "_agent"]
ABOVE = ("sdk", "durable._worker", "durable._client", "durable._engine", "durable.api")


def test_agents_modules_import_only_those_below_them() -> None:
    agents = ROOT / "durable" / "agents"
    assert sorted(p.stem for p in agents.glob("_*.py") if p.stem != "__init__") == sorted(
        AGENTS_ORDER
    )
    problems = []
    for rank, name in enumerate(AGENTS_ORDER):
        imported = imported_modules(agents / f"{name}.py")
        for module in imported & {f"durable.agents.{n}" for n in AGENTS_ORDER[rank:]}:
            problems.append(f"durable/agents/{name}.py imports {module}")
        for module in imported:
            if module.startswith(ABOVE):
                problems.append(f"durable/agents/{name}.py imports {module}, which sits above it")
    assert problems == []
