"""A continued run (ctx.continue_as_new()) over HTTP and on its dashboard page, in a real
headless Chromium against a real `durable serve`: GET /executions/{id}/histories lists the chain
(a read; 404 for an unknown run), the detail says the generation, and the run's page shows the
chain; a run never continued shows no chain."""

from __future__ import annotations

import itertools
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import chromium_path, serve
from cirules import in_ci

try:
    from playwright.sync_api import Browser, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

# Continues as new until its input reaches 3, then waits for a signal so its page is live.
APP_SOURCE = textwrap.dedent(
    """
    from sdk import App, Context

    app = App(poll_interval=0.05)


    @app.workflow
    async def looper(ctx: Context, n: int) -> int:
        if n < 3:
            ctx.continue_as_new(n + 1)
        await ctx.wait_for_signal("go")
        return n


    @app.workflow
    async def plain(ctx: Context, n: int) -> int:
        return n
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


def start(api: httpx.Client, workflow: str, run_id: str) -> None:
    body = {"workflowId": workflow, "context": 0, "executionId": run_id}
    answer = api.post("/executions/start", json=body)
    assert answer.status_code == 201, answer.text


def generation(api: httpx.Client, run_id: str, wanted: int, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict = api.get(f"/executions/{run_id}").json()  # type: ignore[type-arg]
        if body["generation"] == wanted:
            return body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not reach generation {wanted}")


def test_a_continued_runs_chain_over_http_and_on_its_page(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "loop_dash.py").write_text(APP_SOURCE)
    with serve(tmp_path, "loop_dash:app") as server, server.client() as api:
        start(api, "looper", "loop")
        start(api, "plain", "flat")
        detail = generation(api, "loop", 3)
        chain = api.get("/executions/loop/histories")
        assert chain.status_code == 200, chain.text
        rows = chain.json()["histories"]
        assert [r["generation"] for r in rows] == [0, 1, 2, 3]
        assert rows[-1]["firstEvent"] == detail["historyStart"] and rows[-1]["lastEvent"] is None
        assert [r["retained"] for r in rows] == [False, False, True, True]
        for before, after in itertools.pairwise(rows):
            assert after["firstEvent"] == before["lastEvent"] + 1
        assert api.get("/executions/nope/histories").status_code == 404
        flat = api.get("/executions/flat/histories").json()["histories"]
        assert [(r["generation"], r["firstEvent"]) for r in flat] == [(0, 1)]

        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/#/runs/loop")
        expect(page.get_by_test_id("run-generation")).to_have_text(
            f"Continued as new 3 times: generation 3, from event {detail['historyStart']}."
        )
        history_rows = page.get_by_test_id("history-row")
        expect(history_rows).to_have_count(4)
        expect(history_rows.nth(0).locator("td").nth(4)).to_have_text("deleted")
        expect(history_rows.nth(3).locator("td").nth(3)).to_have_text("current")
        page.goto(f"{server.url}/#/runs/flat")
        expect(page.get_by_test_id("run-header")).to_have_attribute("data-status", "succeeded")
        expect(page.get_by_test_id("run-histories")).to_be_hidden()
        assert errors == []
