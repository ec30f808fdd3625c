"""`durable validate FILE`: the plan of a valid definition, every problem of an invalid one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "dag" / "examples"

BROKEN = """\
name: broken
tasks:
  a:
    script: ./a.sh
    depends_on: [c]
  b:
    script: ./b.sh
    depends_on: [a]
  c:
    script: ./c.sh
    depends_on: [b]
  d:
    script: ./d.sh
    depends_on: [nope]
"""


def durable(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args], capture_output=True, text=True, timeout=60
    )


def test_a_valid_file_prints_its_plan() -> None:
    proc = durable("validate", str(EXAMPLES / "etl.yaml"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "valid" in lines[0] and "7 steps" in lines[0]
    assert "  1. fetch_from_api, fetch_from_db" in lines
    assert "  2. transform_api_data, transform_db_data" in lines
    assert lines[-1] == "  5. send_report"


def test_every_problem_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    proc = durable("validate", str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    errors = proc.stderr.splitlines()
    assert all(line.startswith(f"error: {path}:") for line in errors), errors
    assert any("a → b → c → a" in line or "cycle" in line for line in errors), errors
    assert any("'nope'" in line and f"{path}:14:" in line for line in errors), errors
    assert "Traceback" not in proc.stderr


def test_json_reports_for_valid_and_invalid_files(tmp_path: Path) -> None:
    ok = durable("validate", str(EXAMPLES / "etl.yaml"), "--json")
    assert ok.returncode == 0
    report = json.loads(ok.stdout)
    assert report["valid"] is True
    assert report["levels"][0] == ["fetch_from_api", "fetch_from_db"]
    assert len(report["fingerprint"]) == 64
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    bad = durable("validate", str(path), "--json")
    assert bad.returncode == 2
    report = json.loads(bad.stdout)
    assert report["valid"] is False and report["levels"] == []
    assert len(report["problems"]) >= 2


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = durable("validate", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "cannot read the definition" in proc.stderr
