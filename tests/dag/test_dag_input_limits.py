"""Bad input never costs memory: YAML alias bombs, huge files and deep nesting are refused
quickly, with the file, the line and the limit, never a MemoryError or a RecursionError.

"Quickly" is measured in memory, which does not depend on how loaded the machine is: the
documents are refused in a child process whose address space or peak growth is bounded, and
whose time is bounded only by a generous timeout (a regression is exponential or several
times the work, not a few seconds more)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from durable.dag import DagDefinitionError, load_definition, parse_definition
from durable.dag._source import MAX_DEFINITION_BYTES, MAX_DEPTH, MAX_VALUES

# "Billion laughs": 9 lines, 9**9 (387 million) strings once every alias is expanded.
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['x'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)

# Runs the loader in a child with 1 GiB of address space: a regression fails (MemoryError,
# killed) instead of eating the machine.
CHILD = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from durable.dag import DagDefinitionError, load_definition
    try:
        load_definition(sys.argv[1])
    except DagDefinitionError as exc:
        print(f"{exc.line}|{exc.message}")
        sys.exit(0)
    sys.exit("no error")
    """
)


def test_a_yaml_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text("name: bomb\ntasks:\n  a: {}\n" + BOMB)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line, _, message = proc.stdout.strip().partition("|")
    assert f"more than {MAX_VALUES:,} values" in message and "alias" in message, message
    # Found while composing the document: at the alias that goes over the limit.
    assert 4 <= int(line) <= 12


def test_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "name: ok\ntasks:\n  a:\n    environment: &env {A: '1', B: '2'}\n"
        "  b:\n    environment: *env\n    depends_on: [a]\n"
    )
    definition = load_definition(path)
    assert definition.steps[1].environment == {"A": "1", "B": "2"}


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as f:
        f.write("name: big\ntasks:\n  a:\n    script: echo\n")
        f.write("# " + "x" * MAX_DEFINITION_BYTES + "\n")
    with pytest.raises(DagDefinitionError) as info:
        load_definition(path)
    assert info.value.file == str(path)
    assert f"larger than the {MAX_DEFINITION_BYTES // (1024 * 1024)} MiB limit" in str(info.value)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_text_over_the_size_limit_is_refused(fmt: str) -> None:
    text = " " * (MAX_DEFINITION_BYTES + 1) + ("{}" if fmt == "json" else "name: x")
    with pytest.raises(DagDefinitionError, match="MiB limit"):
        parse_definition(text, f"big.{fmt}")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_yaml_nesting_is_a_clear_error(depth: int) -> None:
    text = f"name: w\ntasks:\n  a:\n    params:\n      x: {'[' * depth}{']' * depth}\n"
    with pytest.raises(DagDefinitionError) as info:
        parse_definition(text, "deep.yaml")
    assert f"nested more than {MAX_DEPTH} levels deep" in info.value.message
    assert info.value.line == 5


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_json_nesting_is_a_clear_error(depth: int) -> None:
    text = (
        '{"id": "w",\n "steps": [{"id": "a",\n  "params": {"x": '
        + "[" * depth
        + "]" * depth
        + "}}]}"
    )
    with pytest.raises(DagDefinitionError) as info:
        parse_definition(text, "deep.json")
    assert f"nested more than {MAX_DEPTH} levels deep" in info.value.message
    assert info.value.line == 3


def test_nesting_within_the_limit_is_fine() -> None:
    depth = MAX_DEPTH - 10
    text = f"name: w\ntasks:\n  a:\n    params:\n      x: {'[' * depth}{']' * depth}\n"
    assert parse_definition(text, "ok.yaml").steps[0].params["x"] is not None


# Parses the file in a child and prints the line, how much its peak RSS grew while parsing
# (KiB; the peak is reset first: /proc/self/clear_refs) and the message.
PEAK_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from durable.dag import DagDefinitionError, parse_definition

    def kib(key):
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith(key))

    text = Path(sys.argv[1]).read_text()
    Path("/proc/self/clear_refs").write_text("5")
    before = kib("VmRSS:")
    try:
        parse_definition(text, Path(sys.argv[1]).name)
    except DagDefinitionError as exc:
        print(f"{exc.line}|{kib('VmHWM:') - before}|{exc.message}")
        sys.exit(0)
    sys.exit("no error")
    """
)
# Refused at the limit, parsing grows the child by ~20 MiB (JSON) and ~60 MiB (YAML). Counted
# only once the whole document is walked (JSON) or composed (YAML), the same refusal grows it by
# 80 and 311 MiB; counted after everything (the model too), by 237 and 425 MiB (and at 4 MiB,
# before the size limit was 1 MiB: 33 s and 970 MiB).
MAX_PEAK_GROWTH_KIB = {"json": 48 * 1024, "yaml": 160 * 1024}


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_too_many_values_without_aliases_are_refused_quickly(fmt: str, tmp_path: Path) -> None:
    # Under the size limit, but each value costs a line entry, a model copy and more.
    n = (MAX_DEFINITION_BYTES - 200) // 2
    zeros = ",".join(["0"] * n)
    if fmt == "json":
        text = '{"id": "w",\n "steps": [{"id": "a",\n  "params": {"x": [' + zeros + "]}}]}"
    else:
        text = "name: w\ntasks:\n  a:\n    params:\n      x: [" + zeros + "]\n"
    path = tmp_path / f"many.{fmt}"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line, growth, message = proc.stdout.strip().split("|", 2)
    assert f"more than {MAX_VALUES:,} values (keys, items and scalars)" in message
    assert int(line) == (3 if fmt == "json" else 5)
    assert int(growth) < MAX_PEAK_GROWTH_KIB[fmt], f"parsing grew the process by {growth} KiB"
