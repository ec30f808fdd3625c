"""The web dashboard in a real headless Chromium, against the real `durable serve` (with its
in-process worker): start runs from the form, watch the list and a run's page update live
without reloading, cancel a run, and the token form. Screenshots of each stage are saved to
$DURABLE_TEST_ARTIFACTS (else tests/artifacts/)."""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Server, artifacts_dir, chromium_path, serve
from cirules import in_ci

try:
    from playwright.sync_api import (
        Browser,
        ConsoleMessage,
        Page,
        Request,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

APP = "dashboard_app:app"
# A DAG of three steps and a Python workflow that sleeps as long as its input says. A step's
# result carries markup: the dashboard must show it as text, never as elements.
APP_SOURCE = textwrap.dedent(
    """
    import asyncio

    from sdk import App, Context

    app = App(poll_interval=0.05)

    flow = app.dag("pipeline", config={"factor": 2})
    fetch = flow.js("fetch", "return [1, 2, 3];")
    transform = flow.js(
        "transform", "return deps.fetch.map(x => x * ctx.config.factor);", depends=[fetch]
    )
    flow.js(
        "store",
        "return {stored: deps.transform, note: '<img src=x onerror=alert(1)>'};",
        depends=[transform],
    )
    app.register_dag(flow)


    @app.step()
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds


    @app.workflow(name="slow")
    async def slow(ctx: Context, event: dict) -> dict:
        return {"slept": await nap(float(event.get("seconds", 2)))}
    """
)

LIVE = 30_000  # ms: how long a status may take to turn, before the test fails
GREEN = "rgb(31, 157, 85)"  # --success in app.css
TOKEN = "dashboard-test-token-0123456789"  # the server wants 16 characters or more


@pytest.fixture
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "dashboard_app.py").write_text(APP_SOURCE)
    return tmp_path


class Shots:
    """Saves numbered screenshots of one test and remembers them for the final check."""

    def __init__(self, page: Page, prefix: str) -> None:
        self.page = page
        self.prefix = prefix
        self.paths: list[Path] = []

    def take(self, name: str) -> None:
        path = artifacts_dir() / f"{self.prefix}-{len(self.paths) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        self.paths.append(path)

    def check(self) -> None:
        for path in self.paths:
            assert path.is_file() and path.stat().st_size > 0, path


def open_page(browser: Browser, server: Server) -> tuple[Page, list[str]]:
    """A page on the dashboard, and the uncaught errors and warnings of its scripts (to be
    none)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(LIVE)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: ConsoleMessage) -> None:
        # The run page warns when the event stream fails and it falls back to polling.
        if message.type == "warning":
            errors.append(message.text)

    page.on("console", console)
    page.goto(f"{server.url}/")
    # Set once; still there at the end means nothing reloaded the page.
    page.evaluate("window.__sameDocument = true")
    return page, errors


def start_run(page: Page, workflow: str, context: str, run_id: str) -> None:
    page.get_by_test_id("nav-runs").click()
    form = page.get_by_test_id("start-form")
    expect(form.locator(f"option[value='{workflow}']")).to_have_count(1)
    page.get_by_test_id("start-workflow").select_option(workflow)
    page.get_by_test_id("start-context").fill(context)
    page.get_by_test_id("start-execution-id").fill(run_id)
    page.get_by_test_id("start-submit").click()
    expect(page).to_have_url(re.compile(rf"#/runs/{re.escape(run_id)}$"))
    expect(page.get_by_test_id("run-id")).to_have_text(run_id)


def test_runs_start_update_live_and_cancel(browser: Browser, workdir: Path) -> None:
    with serve(workdir, APP) as server:
        page, errors = open_page(browser, server)
        streams: list[str] = []  # the Accept headers of the requests for a run's events

        def seen(request: Request) -> None:
            if "/events" in request.url:
                streams.append(request.headers.get("accept", ""))

        page.on("request", seen)
        shots = Shots(page, "dashboard")
        expect(page.get_by_test_id("runs-table")).to_be_visible()
        expect(page.locator("[data-testid=filter-workflow] option[value=pipeline]")).to_have_count(
            1
        )
        shots.take("runs-list-empty")

        # A DAG run started from the form: its page shows it finish, with a node per step.
        start_run(page, "pipeline", '{"n": 2}', "ui-pipeline-1")
        header = page.get_by_test_id("run-header")
        expect(header).to_have_attribute("data-status", "succeeded", timeout=LIVE)
        nodes = page.locator("[data-testid=step-graph] g[data-step-id]")
        expect(nodes).to_have_count(3)
        for step in ("fetch", "transform", "store"):
            node = page.locator(f"[data-testid=step-graph] g[data-step-id={step}]")
            expect(node).to_have_attribute("data-status", "success")
        expect(page.locator("[data-testid=step-graph] path.edge")).to_have_count(2)
        results = page.get_by_test_id("step-results")
        expect(results.locator("tbody tr")).to_have_count(3)
        expect(results.locator("tr[data-step-id=transform]")).to_contain_text("[2,4,6]")
        expect(results.locator("tr[data-step-id=store]")).to_contain_text("<img src=x")
        assert results.locator("img").count() == 0, "a result's markup became an element"
        timeline = page.get_by_test_id("timeline")
        expect(timeline.locator("li[data-type=RunStarted]")).to_have_count(1)
        expect(timeline.locator("li[data-type=RunCompleted]")).to_have_count(1)
        assert timeline.locator("li[data-type=StepCompleted]").count() >= 3
        shots.take("run-page")

        # The list follows a run from running to succeeded while it is on screen.
        start_run(page, "slow", '{"seconds": 4}', "ui-slow-live")
        page.get_by_test_id("nav-runs").click()
        row = page.locator("[data-testid=runs-table] tr[data-run-id=ui-slow-live]")
        expect(row).to_have_attribute("data-status", "running", timeout=LIVE)
        shots.take("runs-list-running")
        expect(row).to_have_attribute("data-status", "succeeded", timeout=LIVE)
        done = page.locator("[data-testid=runs-table] tr[data-run-id=ui-pipeline-1]")
        expect(done).to_have_attribute("data-status", "succeeded")
        badge = done.get_by_test_id("status-badge")
        assert badge.evaluate("b => getComputedStyle(b).color") == GREEN
        shots.take("runs-list-succeeded")

        # Cancel a long run from its page.
        start_run(page, "slow", '{"seconds": 120}', "ui-slow-cancel")
        expect(header).to_have_attribute("data-status", "running", timeout=LIVE)
        page.get_by_test_id("signal-name").fill("poke")
        page.get_by_test_id("signal-payload").fill('{"x": 1}')
        page.get_by_test_id("signal-submit").click()
        expect(page.get_by_test_id("flash")).to_contain_text('Signal "poke" sent')
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_test_id("cancel-button").click()
        expect(header).to_have_attribute("data-status", "cancelled", timeout=LIVE)
        # The page stayed open while the run ended: these came through the event stream.
        timeline = page.get_by_test_id("timeline")
        expect(timeline.locator("li[data-type=CancelRequested]")).to_have_count(1)
        expect(timeline.locator("li[data-type=RunCancelled]")).to_have_count(1)
        assert any("text/event-stream" in accept for accept in streams), streams
        shots.take("run-cancelled")
        page.get_by_test_id("nav-runs").click()
        cancelled = page.locator("[data-testid=runs-table] tr[data-run-id=ui-slow-cancel]")
        expect(cancelled).to_have_attribute("data-status", "cancelled")

        # The status filter asks the server for cancelled runs only.
        page.get_by_test_id("filter-status").select_option("cancelled")
        expect(page.locator("[data-testid=runs-table] tbody tr")).to_have_count(1)

        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert errors == [], errors
        shots.check()


def test_a_token_is_asked_for_and_kept(browser: Browser, workdir: Path) -> None:
    env = {"DURABLE_API_TOKEN": TOKEN}
    with serve(workdir, APP, env=env) as server:
        page, errors = open_page(browser, server)
        shots = Shots(page, "token")
        form = page.get_by_test_id("token-form")
        expect(form).to_be_visible()
        shots.take("token-form")

        page.get_by_test_id("token-input").fill("wrong")
        page.get_by_test_id("token-save").click()
        expect(page.get_by_test_id("token-error")).not_to_be_empty()
        expect(form).to_be_visible()

        page.get_by_test_id("token-input").fill(TOKEN)
        page.get_by_test_id("token-save").click()
        expect(form).to_be_hidden()
        expect(page.locator("[data-testid=start-workflow] option[value=slow]")).to_have_count(1)
        expect(page.get_by_test_id("runs-empty")).to_be_visible()
        assert page.evaluate("localStorage.getItem('durable.token')") == TOKEN
        shots.take("token-accepted")

        # A new page of the same browser context starts with the stored token: no form.
        again = page.context.new_page()
        again.goto(f"{server.url}/")
        expect(again.get_by_test_id("runs-empty")).to_be_visible()
        expect(again.get_by_test_id("token-form")).to_be_hidden()
        assert errors == [], errors
        shots.check()


def test_artifacts_dir_is_the_environment_s_or_tests_artifacts() -> None:
    chosen = os.environ.get("DURABLE_TEST_ARTIFACTS")
    expected = Path(chosen) if chosen else Path(__file__).resolve().parents[1] / "artifacts"
    assert artifacts_dir() == expected and expected.is_dir()
