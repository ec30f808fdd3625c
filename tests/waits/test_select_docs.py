"""docs/select.md: every ```python block is a whole program that runs as written and prints
what the page says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PAGE = ROOT / "docs" / "select.md"
SNIPPETS = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.S | re.M)
EXPECTED = [
    ["confirmed by ann", "no confirmation in time"],
    ["{'provider': '"],
    ["ann said yes", "bob did not answer: rejected", "['ann', 'bob']"],
]


def test_the_page_has_the_three_patterns() -> None:
    assert len(SNIPPETS) == len(EXPECTED) == 3
    titles = re.findall(r"^### (.*)$", PAGE.read_text(), flags=re.M)
    assert titles == [
        "A signal, or a timeout",
        "The first of two services",
        "Human approval with a deadline, and a reminder",
    ]


@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_a_snippet_runs_as_written(tmp_path: Path, index: int) -> None:
    script = tmp_path / f"snippet{index}.py"
    script.write_text(SNIPPETS[index])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(EXPECTED[index]), done.stdout
    for line, expected in zip(lines, EXPECTED[index], strict=True):
        assert line.startswith(expected), (line, expected)
    assert "Traceback" not in done.stderr, done.stderr
