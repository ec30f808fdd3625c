"""The mutation-testing command's configuration stays usable (benchmarks/mutation.py, .toml).

The run itself is not part of the suite (it takes its budget in minutes); this checks, cheaply,
what would make it fail or measure nothing: a module moved, a test renamed or deselected by a
-k that no longer matches, a lock that disagrees with the test lock, and the filter that keeps
annotations out of the mutants. cosmic-ray is not needed here (nor installed by the test extras).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "benchmarks/mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


mutation = _load()


def _selection(args: tuple[str, ...]) -> str | None:
    """The -k expression among pytest arguments, if any."""
    return next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "-k"), None)


def _named(args: tuple[str, ...]) -> list[str]:
    """Every test the arguments name: the targets, and the ids they --deselect."""
    deselected = [a.split("=", 1)[1] for a in args if a.startswith("--deselect=")]
    return [*mutation.test_targets(args), *deselected]


def test_every_module_is_a_guarantee_carrying_file_of_the_tree() -> None:
    _, modules = mutation.load_config()
    paths = [m.path for m in modules]
    for path in paths:
        assert (ROOT / path).is_file() and path.endswith(".py"), path
        assert path.split("/")[0] in mutation.PACKAGES, path
    # The list: storage appends and fencing, the run log, the executor's replay, the
    # step runner, the DAG scheduler's trigger rules, the API's auth.
    for needed in (
        "storage/_sqlite_ops.py",
        "storage/_postgres_ops.py",
        "durable/_runlog.py",
        "durable/runtime/_executor.py",
        "durable/runtime/_step_runner.py",
        "durable/dag/_schedule.py",
        "durable/api/_auth.py",
    ):
        assert needed in paths


def test_every_named_test_collects_under_its_selection() -> None:
    """One collection per -k expression (three), as the mutation run calls pytest: every path,
    node id and deselected id must still name at least one test that the selection keeps."""
    _, modules = mutation.load_config()
    groups: dict[str | None, set[str]] = {}
    for module in modules:
        for args in (module.tests, module.confirm):
            if args:
                groups.setdefault(_selection(args), set()).update(_named(args))
    for selection, named in groups.items():
        for name in named:
            assert (ROOT / name.split("::")[0]).is_file(), name
        args = ("-k", selection) if selection else ()
        command = [*shlex.split(mutation.pytest_command((*args, *sorted(named)))), "--co"]
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        collected = [line for line in proc.stdout.splitlines() if "::" in line]
        for name in named:
            assert any(c == name or c.startswith((f"{name}::", f"{name}[")) for c in collected), (
                f"{name} selects no test under -k {selection!r}"
            )


def test_annotations_and_type_checking_blocks_are_not_mutated() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import os\n"
        "def f(a: int | None, *b: str | bytes) -> dict[str, int] | None:\n"
        "    x: int | None = a | 1\n"
        "    return {'é': a | 2}\n"
    )
    spans = mutation.skipped_spans(source)

    def skipped(line: int, text: str, nth: int = 0) -> bool:
        start = [m.start() for m in re.finditer(re.escape(text), source.splitlines()[line - 1])]
        col = start[nth]
        return bool(mutation.within(spans, (line, col), (line, col + len(text))))

    assert skipped(3, "TYPE_CHECKING") and skipped(4, "os")  # the test and the block
    assert skipped(5, "|", 0) and skipped(5, "|", 1) and skipped(5, "|", 2)
    assert skipped(6, "|", 0)  # x: int | None
    assert not skipped(6, "|", 1)  # = a | 1: runs
    assert not skipped(7, "|")  # after a non-ASCII character: columns are characters
    assert not skipped(7, "2")


def test_budget_durations() -> None:
    assert mutation.parse_budget("20m") == 1200
    assert mutation.parse_budget("90s") == 90
    assert mutation.parse_budget("1.5h") == 5400
    assert mutation.parse_budget("3") == 180
    with pytest.raises(Exception, match="a duration"):
        mutation.parse_budget("soon")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line):
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_the_mutation_lock_pins_the_tool_and_agrees_with_the_test_lock() -> None:
    mutation_pins = _pins(ROOT / "requirements/mutation.txt")
    test_pins = _pins(ROOT / "requirements/test.txt")
    assert "cosmic-ray" in mutation_pins and "cosmic-ray" not in test_pins
    shared = set(mutation_pins) & set(test_pins)
    assert shared  # compiled with the test lock as a constraint
    assert {name: mutation_pins[name] for name in shared} == {n: test_pins[n] for n in shared}
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert not any("cosmic" in req for reqs in extras.values() for req in reqs)
