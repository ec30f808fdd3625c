"""The run page's conversation view and approval buttons, in a real headless Chromium against
the real `durable serve`: an agent run (Pydantic AI's FunctionModel) waits for approval of
two tool calls; the page shows the prompt, the model's text and tool calls with their
arguments (markup in them shown as text), and the pending approvals; denying one with a reason
and approving the other by clicking completes the run, and the page shows the tool result, the
denial and the model's answer."""

from __future__ import annotations

from pathlib import Path

from browser import serve
from playwright.sync_api import Browser, expect
from test_dashboard import LIVE, Shots, browser, open_page, start_run  # noqa: F401

APP_FILE = Path(__file__).with_name("agent_approval_app.py")


def test_an_agent_conversation_and_its_approvals(browser: Browser, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / APP_FILE.name).write_text(APP_FILE.read_text())
    with serve(tmp_path, "agent_approval_app:app") as server:
        page, errors = open_page(browser, server)
        shots = Shots(page, "conversation")
        start_run(page, "cleanup", '"delete /a /<b>x</b>"', "ui-agent")
        box = page.get_by_test_id("conversation")
        approvals = box.locator("li[data-role=approval]")
        expect(approvals).to_have_count(2, timeout=LIVE)
        expect(approvals.nth(0)).to_have_attribute("data-status", "pending")
        user = box.locator("li[data-role=user]")
        expect(user).to_have_count(1)
        expect(user).to_contain_text("delete /a /<b>x</b>")
        expect(box.locator("li[data-role=model]").first).to_contain_text("I will delete those.")
        calls = box.locator("li[data-role=tool-call]")
        expect(calls).to_have_count(2)
        expect(calls.nth(0)).to_contain_text("delete (d1)")
        expect(calls.nth(1)).to_contain_text('"path": "/<b>x</b>"')
        assert box.locator("b").count() == 0, "markup in a tool call became an element"
        expect(page.get_by_test_id("run-header")).to_have_attribute("data-status", "running")
        shots.take("pending")

        second = box.locator("li[data-role=approval][data-tool-call-id=d2]")
        second.get_by_test_id("approval-reason").fill("not that one")
        second.get_by_test_id("deny-button").click()
        expect(second).to_have_attribute("data-status", "denied", timeout=LIVE)
        expect(second).to_contain_text("Reason: not that one")
        first = box.locator("li[data-role=approval][data-tool-call-id=d1]")
        first.get_by_test_id("approve-button").click()

        header = page.get_by_test_id("run-header")
        expect(header).to_have_attribute("data-status", "succeeded", timeout=LIVE)
        expect(first).to_have_attribute("data-status", "approved", timeout=LIVE)
        returns = box.locator("li[data-role=tool-return]")
        expect(returns).to_have_count(2, timeout=LIVE)
        expect(returns.nth(0)).to_contain_text("deleted /a")
        expect(returns.nth(1)).to_contain_text("Denied delete (d2)")
        expect(returns.nth(1)).to_contain_text("not that one")
        expect(box.locator("li[data-role=model]").last).to_contain_text("deleted /a | not that one")
        expect(box.locator("[data-testid=approve-button]")).to_have_count(0)
        shots.take("decided")
        assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        assert errors == [], errors
        shots.check()
