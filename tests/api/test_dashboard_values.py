"""The dashboard's values panel (ctx.set_event) on a run's page, in a real headless Chromium
against a real `durable serve` (SQLite file, its in-process worker): the keys and latest values
a run set, updated live as it sets more, markup in a key and a value shown as text, never run;
hidden for a run that set none."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import artifacts_dir, chromium_path, serve
from cirules import in_ci

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

MARKUP_KEY = "<img src=x onerror=window.__pwned=1>"
MARKUP_VALUE = "<img src=x onerror=window.__pwned=2>"

APP_SOURCE = textwrap.dedent(
    f"""
    from sdk import App, Context

    app = App(poll_interval=0.05)


    @app.workflow
    async def shows(ctx: Context) -> str:
        ctx.set_event("stage", "waiting")
        ctx.set_event({MARKUP_KEY!r}, {{"html": {MARKUP_VALUE!r}}})
        await ctx.wait_for_signal("go")
        ctx.set_event("stage", "done")
        return "ok"


    @app.workflow
    async def quiet(ctx: Context) -> str:
        return "nothing shown"
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


def not_run(page: Page) -> None:
    assert page.locator("main img").count() == 0, "markup from the API became an element"
    assert page.evaluate("window.__pwned") is None, "markup from the API ran"


def test_a_runs_values_panel(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "values_dash.py").write_text(APP_SOURCE)
    with serve(tmp_path, "values_dash:app") as server, server.client() as api:
        started = api.post("/executions/start", json={"workflowId": "shows"})
        run_id = started.json()["executionId"]
        quiet = api.post("/executions/start", json={"workflowId": "quiet"}).json()["executionId"]

        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/#/runs/{run_id}")
        box = page.get_by_test_id("values-box")
        expect(box).to_be_visible()
        stage = box.locator("tr[data-key=stage]")
        expect(stage.get_by_test_id("value-cell")).to_have_text('"waiting"')
        marked = box.locator("tbody tr").filter(has_text="onerror=window.__pwned=1")
        expect(marked).to_have_count(1)
        expect(marked.get_by_test_id("value-cell")).to_contain_text("onerror=window.__pwned=2")
        not_run(page)

        assert api.post(f"/executions/{run_id}/signals/go", json=None).status_code == 202
        expect(stage.get_by_test_id("value-cell")).to_have_text('"done"')  # live
        page.screenshot(path=str(artifacts_dir() / "values-01-panel.png"), full_page=True)
        not_run(page)

        page.goto(f"{server.url}/#/runs/{quiet}")
        expect(page.get_by_test_id("run-header")).to_contain_text("quiet@")
        expect(page.get_by_test_id("values-box")).to_be_hidden()
        assert errors == []
