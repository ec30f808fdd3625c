"""The dashboard's queues view, a queue's page and a queued run's page in a real headless
Chromium against a real `durable serve` (SQLite file, its in-process worker): each queue's
limits, depth, running runs, admissions and why its runs wait; the runs holding a queue's slots
and those waiting, in order; a waiting run's queue, priority, partition and place ("queued:
emails is at its limit 1; 1 run ahead"), updated live when a slot frees; and markup in a queue
name, a workflow name, a partition key and a dedupe key shown as text, never run."""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser import artifacts_dir, chromium_path, serve
from cirules import in_ci

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

# Each markup sets a different flag if a browser ever runs it (no "/": the API's ids refuse it).
MARKUP_QUEUE = "<img src=x onerror=window.__pwned=1>"
MARKUP_WORKFLOW = "<img src=x onerror=window.__pwned=2>"
MARKUP_PARTITION = "<img src=x onerror=window.__pwned=3>"
MARKUP_DEDUPE = "<img src=x onerror=window.__pwned=4>"

# Every run waits for a signal "go", so an admitted run holds its queue's only slot.
APP_SOURCE = textwrap.dedent(
    f"""
    from sdk import App, Context

    app = App(poll_interval=0.05)
    app.queue("emails", concurrency=1, worker_concurrency=1, partition_concurrency=1,
              rate_limit=(100, 60.0))
    app.queue({MARKUP_QUEUE!r}, concurrency=1)


    @app.workflow
    async def email(ctx: Context, n: int) -> int:
        await ctx.wait_for_signal("go")
        return n


    @app.workflow(name={MARKUP_WORKFLOW!r})
    async def marked(ctx: Context, n: int) -> int:
        await ctx.wait_for_signal("go")
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


def start(api: httpx.Client, workflow: str, queue: str, **options: object) -> str:
    body = {"workflowId": workflow, "context": 1, "queue": queue, **options}
    answer = api.post("/executions/start", json=body)
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["executionId"]
    return run_id


def admitted(api: httpx.Client, run_id: str, timeout: float = 30) -> None:
    """Wait until the run's queue has admitted it (it holds the slot from then on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(f"/executions/{run_id}").json()["queue"]["admittedAt"] is not None:
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} was not admitted in {timeout} s")


def not_run(page: Page) -> None:
    """No markup became an element, and none of it ran."""
    assert page.locator("main img").count() == 0, "markup from the API became an element"
    assert page.evaluate("window.__pwned") is None, "markup from the API ran"


def test_queues_page_and_a_waiting_runs_place(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "queue_dash.py").write_text(APP_SOURCE)
    with serve(tmp_path, "queue_dash:app") as server, server.client() as api:
        holder = start(api, "email", "emails")
        admitted(api, holder)
        first = start(
            api,
            "email",
            "emails",
            priority=3,
            partitionKey=MARKUP_PARTITION,
            dedupeKey=MARKUP_DEDUPE,
        )
        second = start(api, "email", "emails")
        marked_holder = start(api, MARKUP_WORKFLOW, MARKUP_QUEUE)
        admitted(api, marked_holder)
        marked_waiting = start(api, MARKUP_WORKFLOW, MARKUP_QUEUE)

        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}/")
        page.get_by_test_id("nav-queues").click()
        table = page.get_by_test_id("queues-table")
        emails = table.locator("tr[data-queue=emails]")
        cells = {
            "concurrency": "1",
            "worker-concurrency": "1",
            "partition-concurrency": "1",
            "rate-limit": "100 per 60 s",
            "waiting": "2",
            "running": "1",
            "admitted-recently": "1",
            "why-waiting": "queued: emails is at its limit 1",
        }
        for testid, text in cells.items():
            expect(emails.get_by_test_id(testid)).to_have_text(text)
        # How long the oldest waiting run has waited; its creation instant (UTC) in the title.
        oldest = emails.get_by_test_id("oldest-waiting").locator("span")
        expect(oldest).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d\d s$"))
        expect(oldest).to_have_attribute("title", re.compile(r"^\d{4}-\d\d-\d\dT.*Z$"))
        # A queue named with markup: its name and its reason as text.
        marked_row = table.locator("tr[data-queue]").filter(has_text="onerror=window.__pwned=1")
        expect(marked_row.get_by_test_id("queue-name")).to_have_text(MARKUP_QUEUE)
        expect(marked_row.get_by_test_id("why-waiting")).to_have_text(
            f"queued: {MARKUP_QUEUE} is at its limit 1"
        )
        expect(marked_row.get_by_test_id("rate-limit")).to_have_text("—")
        not_run(page)
        page.screenshot(path=str(artifacts_dir() / "queues-01-list.png"), full_page=True)

        # The markup queue's page, from its name: the names (markup) as text.
        marked_row.get_by_test_id("queue-name").locator("a").click()
        expect(page.get_by_test_id("queue-title")).to_have_text(MARKUP_QUEUE)
        holding = page.get_by_test_id("admitted-runs")
        expect(holding.locator(f"tr[data-run-id='{marked_holder}']")).to_contain_text(
            MARKUP_WORKFLOW
        )
        not_run(page)

        # The emails queue's page: the run holding its slot, then the waiting ones in the order
        # they come (the first has the higher priority), each linked to its page.
        page.get_by_test_id("nav-queues").click()
        emails.get_by_test_id("queue-name").locator("a").click()
        expect(page.get_by_test_id("queue-title")).to_have_text("emails")
        header = page.get_by_test_id("queue-header")
        expect(header.get_by_test_id("why-waiting")).to_have_text(
            "queued: emails is at its limit 1"
        )
        expect(holding.locator("tbody tr")).to_have_count(1)
        expect(holding.locator(f"tr[data-run-id='{holder}']")).to_contain_text("running")
        rows = page.get_by_test_id("waiting-runs").locator("tbody tr")
        expect(rows).to_have_count(2)
        assert [rows.nth(i).get_attribute("data-run-id") for i in range(2)] == [first, second]
        expect(rows.nth(0)).to_contain_text(MARKUP_PARTITION)
        not_run(page)
        page.screenshot(path=str(artifacts_dir() / "queues-02-queue.png"), full_page=True)

        # The second waiting run, from its link: behind the first, at the queue's limit.
        rows.nth(1).locator("a").click()
        expect(page.get_by_test_id("run-id")).to_have_text(second)
        expect(page.get_by_test_id("run-queue")).to_have_text("emails")
        expect(page.get_by_test_id("run-priority")).to_have_text("0")
        queued = page.get_by_test_id("run-queued")
        expect(queued).to_have_text("queued: emails is at its limit 1; 1 run ahead")
        expect(page.get_by_test_id("run-partition")).to_have_count(0)
        page.screenshot(path=str(artifacts_dir() / "queues-03-waiting-run.png"), full_page=True)

        # The first: its partition and dedupe keys (markup) as text; nothing ahead of it.
        page.goto(f"{server.url}/#/runs/{first}")
        expect(page.get_by_test_id("run-partition")).to_have_text(MARKUP_PARTITION)
        expect(page.get_by_test_id("run-dedupe")).to_have_text(MARKUP_DEDUPE)
        expect(page.get_by_test_id("run-priority")).to_have_text("3")
        expect(queued).to_have_text("queued: emails is at its limit 1; no run ahead")
        not_run(page)

        # The slot frees: the first is admitted, and its page says so without a reload.
        assert api.post(f"/executions/{holder}/signals/go", json=None).status_code == 202
        expect(queued).to_have_count(0)
        facts = page.get_by_test_id("run-queue-facts")
        expect(facts).to_contain_text("Admitted")
        page.screenshot(path=str(artifacts_dir() / "queues-04-admitted.png"), full_page=True)
        # Its queue's page, from the run's queue link: the first now holds the slot.
        page.get_by_test_id("run-queue").click()
        expect(holding.locator(f"tr[data-run-id='{first}']")).to_have_count(1)
        expect(rows).to_have_count(1)

        # The markup workflow's waiting run: workflow and queue names as text.
        page.goto(f"{server.url}/#/runs/{marked_waiting}")
        expect(page.get_by_test_id("run-queue")).to_have_text(MARKUP_QUEUE)
        expect(page.get_by_test_id("run-header")).to_contain_text(f"{MARKUP_WORKFLOW}@1")
        expect(queued).to_have_text(f"queued: {MARKUP_QUEUE} is at its limit 1; no run ahead")
        not_run(page)

        # Back on the list: one waits, one runs, two admitted within the rate window.
        page.get_by_test_id("nav-queues").click()
        expect(emails.get_by_test_id("waiting")).to_have_text("1")
        expect(emails.get_by_test_id("admitted-recently")).to_have_text("2")
        not_run(page)
        assert errors == []
