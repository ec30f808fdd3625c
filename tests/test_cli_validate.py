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


def etl_example(tmp_path: Path) -> Path:
    """The seed ETL example, next to the script files it names (validate checks that they
    exist; the seed examples only show the format)."""
    path = tmp_path / "etl.yaml"
    path.write_text((EXAMPLES / "etl.yaml").read_text())
    for name in ("extract_api", "extract_db", "transform", "validate_merge", "load", "send_report"):
        (tmp_path / "etl").mkdir(exist_ok=True)
        (tmp_path / "etl" / f"{name}.py").write_text("")
    return path


def durable(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args], capture_output=True, text=True, timeout=60
    )


def test_a_valid_file_prints_its_plan(tmp_path: Path) -> None:
    proc = durable("validate", str(etl_example(tmp_path)))
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
    ok = durable("validate", str(etl_example(tmp_path)), "--json")
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


# Every JavaScript a definition holds, each with a syntax error, on its own line.
BAD_JS = """\
name: badjs
tasks:
  a:
    script: echo a
    skip_if: "input.x ==="
  b:
    script: echo b
    depends_on: [a]
    condition: "a.("
  c:
    action: webhook
    params:
      url: "http://localhost:9/{{ steps.a.stdout + }}"
    environment:
      X: "{{ ) }}"
notifications:
  on_success:
    - type: webhook
      url: "http://localhost:9/{{ input. }}"
"""


def test_javascript_syntax_errors_are_found_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "badjs.yaml"
    path.write_text(BAD_JS)
    proc = durable("validate", str(path))
    assert proc.returncode == 2, proc.stdout
    errors = proc.stderr.splitlines()
    assert len(errors) == 5, errors
    expected = [
        (5, "skip_if"),
        (9, "condition"),
        (13, "params.url"),
        (15, "environment.X"),
        (19, "url"),
    ]
    for line, (number, key) in zip(errors, expected, strict=True):
        assert line.startswith(f"error: {path}:{number}: "), line
        assert f"bad JavaScript in {key}" in line, line
    assert "Traceback" not in proc.stderr


def test_a_missing_script_file_is_found_relative_to_the_definition(tmp_path: Path) -> None:
    (tmp_path / "there.sh").write_text("#!/bin/sh\necho there\n")
    (tmp_path / "there.sh").chmod(0o755)
    (tmp_path / "tool.py").write_text("print('tool')\n")
    path = tmp_path / "scripts.yaml"
    path.write_text(
        "name: scripts\n"
        "tasks:\n"
        "  ok_sh:\n"
        "    script: ./there.sh --flag\n"
        "  ok_py:\n"
        "    script: tool.py arg\n"
        "  ok_shell:\n"
        "    script: echo hi | tr a-z A-Z\n"
        "  gone_sh:\n"
        "    script: ./missing.sh --flag\n"  # line 10
        "  gone_py:\n"
        "    script: tools/missing.py\n"  # line 12
    )
    # From another directory: paths are relative to the definition, not to the caller.
    proc = subprocess.run(
        [sys.executable, "-m", "durable", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert proc.returncode == 2, proc.stdout
    errors = proc.stderr.splitlines()
    assert len(errors) == 2, errors
    assert errors[0].startswith(f"error: {path}:10: step 'gone_sh': script file './missing.sh'")
    assert "does not exist" in errors[0] and str(tmp_path / "missing.sh") in errors[0]
    assert errors[1].startswith(f"error: {path}:12: step 'gone_py': script file")


def test_a_script_file_that_is_not_executable_is_found(tmp_path: Path) -> None:
    (tmp_path / "plain.sh").write_text("echo plain\n")
    path = tmp_path / "noexec.yaml"
    path.write_text("name: n\ntasks:\n  a:\n    script: ./plain.sh\n")
    proc = durable("validate", str(path))
    assert proc.returncode == 2
    assert f"{path}:4: step 'a': script file './plain.sh' is not executable" in proc.stderr


def test_a_yaml_alias_bomb_is_one_error_line_in_bounded_memory(tmp_path: Path) -> None:
    # 9 lines that expand to 9**9 strings: refused while composing, under 1 GiB of address
    # space (a regression dies of MemoryError here instead of eating the machine).
    lines = ["a: &a [" + ", ".join(['"x"'] * 9) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "durable", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    [error] = proc.stderr.splitlines()
    assert error.startswith(f"error: {path}:")
    assert "more than 100,000 values once its aliases are expanded" in error
