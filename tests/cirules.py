"""What "in CI" means for the tests, in one place, and the rule that goes with it: in CI no
test skips.

In CI means the environment variable CI (which CI services set, GitHub's and GitLab's to
`true`) holds anything but empty, 0, false, no or off. `.ci/run` exports CI=true itself, so a run
of it never depends on its caller. Any other value counts as CI on purpose: taking a
developer's machine for CI makes a test that would have skipped fail with its reason (loud,
and fixed by unsetting CI); taking CI for a developer's machine would let a test skip there
unnoticed, which is what this module exists to prevent.

Loaded as a pytest plugin (`-p ci` in pyproject): in CI a test, fixture or module that skips
fails instead, with the skip's reason, whatever skipped it (pytest.skip in a fixture, a skipif
marker, a module-level skip). The fixtures that need a server or a browser call `unavailable`,
which says why at once; this hook is the net under everything else.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import NoReturn

import pytest

ENV = "CI"
_NOT_CI = ("", "0", "false", "no", "off")
_IN_CI = pytest.StashKey[bool]()


def in_ci() -> bool:
    return os.environ.get(ENV, "").strip().lower() not in _NOT_CI


def unavailable(reason: str) -> NoReturn:
    """Skip (on a developer's machine) or fail (in CI) for want of something the test needs."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this test must run here)", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    # Decided once, at the start: a test that unsets CI for itself (tests/test_pgserver.py)
    # must not change what counts for the rest of the session.
    config.stash[_IN_CI] = in_ci()


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        return f"{str(reason).removeprefix('Skipped: ')} ({path}:{line})"
    return str(longrepr)


def _fail_skip(config: pytest.Config, report: pytest.TestReport | pytest.CollectReport) -> None:
    if not config.stash.get(_IN_CI, False) or not report.skipped:
        return
    if hasattr(report, "wasxfail"):  # an expected failure is reported as a skip: not one
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where every test must run: {_skip_reason(report)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_skip(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_skip(collector.config, report)
    return report
