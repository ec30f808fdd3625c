"""The dashboard's streams, updates and external-waits panels on a run's page, in a real headless
Chromium against a real `durable serve` (SQLite file, its in-process worker): a stream's values
appear live as the run writes them and the key shows closed at the end; an external wait shows
its name and status (waiting, then completed) and never its token; markup in a stream key, a
value and a wait name is shown as text, never run; both panels hidden for a run with neither."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import artifacts_dir, chromium_path, serve
from cirules import in_ci

from durable.runtime._external import encode_token

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

MARKUP_KEY = "<img src=x onerror=window.__pwned=1>"
MARKUP_VALUE = "<img src=x onerror=window.__pwned=2>"
MARKUP_NAME = "<img src=x onerror=window.__pwned=3>"

APP_SOURCE = textwrap.dedent(
    f"""
    from sdk import App, Context

    app = App(poll_interval=0.05)
    TOKENS = {{}}


    @app.step()
    async def hand_out(run_id: str, token: str) -> None:
        TOKENS[run_id] = token


    @app.workflow
    async def talks(ctx: Context) -> str:
        async def greet(who: str) -> str:
            return "hi " + who

        ctx.on_update("greet", greet)
        ctx.write_stream("tokens", "Hello")
        ctx.write_stream({MARKUP_KEY!r}, {MARKUP_VALUE!r})
        wait = ctx.wait_external(name={MARKUP_NAME!r})
        await hand_out(ctx.run_id, wait.token)
        await ctx.wait_for_signal("more")
        ctx.write_stream("tokens", "world")
        ctx.close_stream("tokens")
        return await wait


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


def token_of(db: Path, run_id: str) -> str:
    """The wait's token, made from its row as the engine made it: no read view shows tokens,
    so the test reads the nonce from the database file the way an operator could not."""
    with sqlite3.connect(db) as conn:
        pos, nonce = conn.execute(
            "SELECT pos, nonce FROM durable_completions WHERE run_id = ?", (run_id,)
        ).fetchone()
    return encode_token(run_id, pos, nonce)


def test_streams_and_external_waits_on_a_runs_page(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "talk_dash.py").write_text(APP_SOURCE)
    with serve(tmp_path, "talk_dash:app") as server, server.client() as api:
        run_id = api.post("/executions/start", json={"workflowId": "talks"}).json()["executionId"]
        quiet = api.post("/executions/start", json={"workflowId": "quiet"}).json()["executionId"]

        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/#/runs/{run_id}")
        streams = page.get_by_test_id("streams-box")
        tokens = streams.locator("div[data-stream=tokens]")
        expect(tokens.get_by_test_id("stream-values")).to_have_text("Hello\n")
        expect(tokens).to_contain_text("1 values so far")
        marked = streams.locator("div.stream").filter(has_text="onerror=window.__pwned=1")
        expect(marked.get_by_test_id("stream-values")).to_have_text(MARKUP_VALUE + "\n")
        waits = page.get_by_test_id("external-box")
        expect(waits.get_by_test_id("external-status")).to_have_text("waiting")
        expect(waits).to_contain_text(MARKUP_NAME)
        assert "dx1." not in waits.inner_text()  # never a token
        not_run(page)

        # An update, answered: its row on the page, the answer as text.
        asked = api.post(
            f"/executions/{run_id}/updates/greet",
            json={"args": [MARKUP_VALUE], "updateId": "u1", "wait": 30},
        )
        assert asked.status_code == 200, asked.text
        updates = page.get_by_test_id("updates-box")
        row = updates.locator("tr[data-update=u1]")
        expect(row.get_by_test_id("update-status")).to_have_text("completed")
        expect(row.get_by_test_id("update-answer")).to_contain_text("hi <img")
        not_run(page)

        token = token_of(tmp_path / "runs.db", run_id)
        done = api.post("/completions", json={"token": token, "result": "paid"})
        assert done.status_code == 200, done.text
        expect(waits.get_by_test_id("external-status")).to_have_text("completed")  # live
        assert api.post(f"/executions/{run_id}/signals/more", json=None).status_code == 202
        expect(tokens.get_by_test_id("stream-values")).to_have_text("Hello\nworld\n")  # live
        expect(tokens).to_contain_text("closed, 2 values")
        page.screenshot(path=str(artifacts_dir() / "streams-01-panels.png"), full_page=True)
        not_run(page)

        page.goto(f"{server.url}/#/runs/{quiet}")
        expect(page.get_by_test_id("run-header")).to_contain_text("quiet@")
        expect(page.get_by_test_id("streams-box")).to_be_hidden()
        expect(page.get_by_test_id("external-box")).to_be_hidden()
        expect(page.get_by_test_id("updates-box")).to_be_hidden()
        assert errors == []
