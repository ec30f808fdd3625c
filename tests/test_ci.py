"""In CI nothing skips (tests/cirules.py): every way a test can skip fails it there instead,
with the reason; outside CI the same tests skip. One definition of "in CI", which `.ci/run`
sets itself, and the suite loads the guard."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cirules
import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# Each way a test can skip: a call in the test, in a fixture, a skipif marker, and a module
# whose import skips (as the browser tests' do without Playwright); one test that passes and
# one expected failure, which pytest reports with the skips but which is not one.
SKIPPING = """
import pytest

@pytest.fixture
def widget():
    pytest.skip("no widget here")

def test_calls_skip():
    pytest.skip("no gadget here")

def test_fixture_skips(widget):
    pass

@pytest.mark.skipif(True, reason="not on this platform")
def test_marker_skips():
    pass

def test_passes():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
"""
MODULE_SKIP = """
import pytest
pytest.skip("no browser module", allow_module_level=True)

def test_never_collected():
    pass
"""


def run_pytest(where: Path, ci_value: str | None, *files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci_value is not None:
        env["CI"] = ci_value
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only pytest and the guard: a quick start
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "cirules", "-p", "no:cacheprovider", "-rA", *files],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_skipping.py").write_text(textwrap.dedent(SKIPPING))
    (tmp_path / "test_module_skip.py").write_text(textwrap.dedent(MODULE_SKIP))
    return tmp_path


def test_in_ci_every_skip_fails_with_its_reason(project: Path) -> None:
    done = run_pytest(project, "true", "test_skipping.py")
    out = done.stdout
    assert done.returncode == 1, out
    # A skip in the setup (a fixture's, a marker's) fails the setup: pytest calls that an error.
    assert "1 failed, 1 passed, 1 xfailed, 2 errors" in out.splitlines()[-1], out
    for test, reason in [
        ("FAILED test_skipping.py::test_calls_skip", "no gadget here"),
        ("ERROR test_skipping.py::test_fixture_skips", "no widget here"),
        ("ERROR test_skipping.py::test_marker_skips", "not on this platform"),
    ]:
        assert f"{test} - skipped in CI, where every test must run: {reason}" in out, out


def test_in_ci_a_module_that_skips_fails_the_run(project: Path) -> None:
    done = run_pytest(project, "1", "test_module_skip.py")
    assert done.returncode != 0, done.stdout
    assert "skipped in CI, where every test must run: no browser module" in done.stdout
    assert "1 error" in done.stdout.splitlines()[-1], done.stdout
    assert "Interrupted: 1 error during collection" in done.stdout


@pytest.mark.parametrize("value", [None, "false"])
def test_outside_ci_the_same_tests_skip(project: Path, value: str | None) -> None:
    done = run_pytest(project, value, "test_skipping.py", "test_module_skip.py")
    assert done.returncode == 0, done.stdout
    assert "1 passed, 4 skipped, 1 xfailed" in done.stdout.splitlines()[-1], done.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("woodpecker", True),  # a CI service's own value: still CI
        (" true ", True),
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_one_definition_of_in_ci(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert cirules.in_ci() is expected
    monkeypatch.delenv("CI")
    assert cirules.in_ci() is False


def test_the_suite_runs_with_the_guard(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.has_plugin("cirules")


def test_ci_run_sets_ci_itself_before_anything_else() -> None:
    """Whatever the caller's environment: not inherited, not conditional."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    code = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert code[:3] == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "export CI=true"]
