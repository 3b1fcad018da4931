"""The console against the lab: a real SIPp call through Asterisk into `caseline run`, seen
live in headless Chromium, then in the decision log. The caller's SIP display name is
hostile markup: it must show as text. Screenshots land in tmp_path.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from labkit import sipp

from tests.support.browser import chromium, need_playwright
from tests.support.callers import VIP_A_MGR1
from tests.support.console_app import HOSTILE
from tests.support.decisions import learned, wait_decision
from tests.support.ops import OPS, auth
from tests.support.phones import start_phones

expect = need_playwright()  # skips here (fails in CI) without playwright

pytestmark = pytest.mark.lab



@pytest.mark.timeout(120)
async def test_a_sipp_call_appears_live_ends_and_opens_with_its_reasons(routing, phones, tmp_path: Path):
    start_phones(phones, tmp_path, mgr1="answer:4000", sup1="answer", op1="answer", op2="answer")
    token = auth()["Authorization"].removeprefix("Bearer ")
    async with chromium(tmp_path / "chromium-profile", viewport={"width": 1360, "height": 900}) as browser:
        page = browser.pages[0] if browser.pages else await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(OPS + "/console/")
        await page.fill("#token", token)
        await page.click("#signin-form button[type=submit]")
        await expect(page.locator("#live-status")).to_have_text("Live: updated as calls change")

        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=3000, display_name=HOSTILE)
        row = page.locator("#live-calls tbody tr", has_text="***4567")
        await expect(row).to_be_visible(timeout=10_000)
        await expect(row.locator(".name")).to_have_text(HOSTILE)  # the SIP display name, as text
        await expect(row).to_contain_text("mgr1 (manager)")
        assert await page.locator("img").count() == 0
        await page.screenshot(path=tmp_path / "lab-live.png", full_page=True)
        await run.wait(timeout=30)
        await expect(row).to_have_count(0, timeout=15_000)

        await page.click('#tabs [data-tab="decisions"]')
        entry = page.locator("#decision-log tr.entry", has_text="***4567").first
        await entry.click()
        await expect(page.locator("#decision-log tr.details-row .reasons").first).to_contain_text("[abc.A]")
        await page.screenshot(path=tmp_path / "lab-decisions.png", full_page=True)

        # routing: the replay of that real call under a candidate, a broken candidate's line,
        # and apply, on the running process's own routing.yaml
        routing_file = tmp_path / "config" / "routing.yaml"
        running = routing_file.read_text()
        await page.click('#tabs [data-tab="routing"]')
        await expect(page.locator("#routing-running")).to_have_text(running)
        policy = yaml.safe_load(running)  # the lab's copy is re-dumped YAML: edit it as data
        policy["strategy"]["retention"]["A"] = 75
        candidate = yaml.safe_dump(policy, allow_unicode=True, sort_keys=False)
        await page.fill("#candidate", candidate)
        await page.click("#routing-replay")
        await expect(page.locator("#replay-summary")).to_contain_text("1 of 1")
        change = page.locator("#replay-changes tbody tr")
        await expect(change).to_contain_text("prio 70")
        await expect(change).to_contain_text("prio 75")
        bad_line = next(i for i, text in enumerate(candidate.splitlines(), 1)
                        if "mode: retention" in text)
        await page.fill("#candidate", candidate.replace("mode: retention", "mode: sideways"))
        await page.click("#routing-check")
        await expect(page.locator("#routing-problem-list li.problem")).to_contain_text(
            f"line {bad_line} · strategy.mode ·")
        await page.fill("#candidate", candidate)
        await page.click("#routing-check")
        await page.click("#routing-apply")
        await page.click("#apply-yes")
        await expect(page.locator("#routing-apply-out")).to_contain_text("Applied")
        assert routing_file.read_text() == candidate
        assert dialogs == []

    # the running process routes with the applied file: once the first call is learned, the
    # client's next call is a repeat of an A client: A's new base 75 + the repeat boost 10
    await learned(routing, VIP_A_MGR1)
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=500)
    await run.wait(timeout=30)
    latest = (await wait_decision(routing, 2))[0]
    assert latest["priority"] == "85"
    assert any("A base 75" in r["text"] for r in latest["reasons"]), latest["reasons"]
