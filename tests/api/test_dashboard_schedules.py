"""The dashboard's schedules view in a real headless Chromium against a real `durable serve`:
each schedule with its next fire time, kept live; pause and resume from the page; "run now"
starts a run (its id flashed, its page reachable from the runs list); a schedule name with
markup shows as text."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import artifacts_dir, chromium_path, serve
from cirules import in_ci

try:
    from playwright.sync_api import Browser, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

APP_SOURCE = textwrap.dedent(
    """
    from typing import Any
    from sdk import App, Context

    app = App(poll_interval=0.05)


    @app.schedule("0 3 * * *", timezone="Europe/Berlin", name="nightly")
    @app.workflow
    async def report(ctx: Context, tick: dict[str, Any]) -> str:
        return str(tick["scheduled_at"])


    app.add_schedule(report, "30 * * * *", name="<b>hourly</b>", overlap="allow")
    """
)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield launched
        finally:
            launched.close()


def test_schedules_list_pause_resume_and_run_now(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "sched_dash.py").write_text(APP_SOURCE)
    with serve(tmp_path, "sched_dash:app") as server:
        page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/")
        page.get_by_test_id("nav-schedules").click()
        table = page.get_by_test_id("schedules-table")
        nightly = table.locator("tr[data-schedule=nightly]")
        expect(nightly).to_contain_text("0 3 * * *")
        expect(nightly).to_contain_text("Europe/Berlin")
        # The next fire time, shown in the browser's time; its UTC instant in the title.
        next_run = nightly.get_by_test_id("next-run").locator("span")
        expect(next_run).to_have_attribute(
            "title", re.compile(r"^\d{4}-\d\d-\d\dT0[12]:00:00\.000Z$")
        )
        # Markup in a name is text.
        hourly = table.locator("tr[data-schedule='<b>hourly</b>']")
        expect(hourly).to_contain_text("<b>hourly</b>")
        assert table.locator("b").count() == 0
        page.screenshot(path=str(artifacts_dir() / "schedules-01-list.png"), full_page=True)

        nightly.get_by_test_id("pause-schedule").click()
        expect(nightly).to_have_attribute("data-paused", "true")
        expect(nightly.get_by_test_id("next-run")).to_have_text("paused")
        nightly.get_by_test_id("resume-schedule").click()
        expect(nightly).to_have_attribute("data-paused", "false")

        nightly.get_by_test_id("trigger-schedule").click()
        expect(page.get_by_test_id("flash")).to_contain_text("started nightly@")
        page.screenshot(path=str(artifacts_dir() / "schedules-02-triggered.png"), full_page=True)
        run_id = page.get_by_test_id("flash").inner_text().removeprefix("started ")
        page.get_by_test_id("nav-runs").click()
        page.locator(f"tr[data-run-id='{run_id}'] a").click()
        expect(page.get_by_test_id("run-id")).to_have_text(run_id)
        expect(page.get_by_test_id("status-badge").first).to_have_text("succeeded")
        assert errors == []
