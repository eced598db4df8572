"""Drives the web console in Debian's Chromium (through Playwright, PyPI; no browser
download) the way an operator would: sign in, filter, search, open an event, retry a dead
delivery from its page, replay a filter after reading its count, watch the live tail take an
event sent meanwhile, and read the charts. Takes a screenshot of each page. Exits non-zero,
saying what was wrong, when anything is.

Usage: console.py <admin base URL> <admin token> <hooks base URL> <screenshot dir>
"""

import json
import os
import re
import sys
import urllib.request

from playwright.sync_api import Error as PlaywrightError, expect, sync_playwright

ADMIN, TOKEN, HOOKS, SHOTS = sys.argv[1:5]
CHROMIUM = os.environ.get("HOOKYARD_CHROMIUM", "/usr/bin/chromium")


def post_event(route, body):
    request = urllib.request.Request(
        f"{HOOKS}/hooks/{route}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 202, answer.status
        return json.load(answer)["id"]


def shot(page, name):
    # Chromium now and then answers "Unable to capture screenshot" while the machine is busy
    # (seen once in a CI run); the page itself is fine, so try again before failing.
    for attempt in range(3):
        try:
            page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)
            return
        except PlaywrightError as e:
            if "Unable to capture screenshot" not in str(e) or attempt == 2:
                raise
            page.wait_for_timeout(500)


report = {}
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Sign in.
    page.goto(f"{ADMIN}/ui/events")
    expect(page).to_have_url(f"{ADMIN}/ui/login")
    shot(page, "sign-in")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    rows = page.locator("#events tr")
    report["events_listed"] = rows.count() - 1
    shot(page, "events")

    # Filter by route, then search for an order number in bodies.
    page.locator("form.filters select[name=route]").select_option("shop")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/ui/events\?route=shop"))
    routes = page.locator("#events tr td:nth-child(3)").all_inner_texts()
    assert routes and all(r == "shop" for r in routes), routes
    report["shop_events"] = len(routes)
    # Any route, text in the body: the order went to the shop and to billing.
    page.locator("form.filters select[name=route]").select_option("")
    page.locator("form.filters input[name=q]").fill("ord_4711")
    page.get_by_role("button", name="Filter").click()
    found = page.locator("#events tr td:nth-child(2) a")
    expect(found).to_have_count(2)
    report["search_found"] = sorted(page.locator("#events tr td:nth-child(3)").all_inner_texts())
    shot(page, "events-filtered")

    # The billing event's page: its body, its deliveries and their attempts.
    page.locator("#events tr", has_text="billing").locator("td:nth-child(2) a").click()
    expect(page.locator("pre").first).to_contain_text("ord_4711")
    report["event_url"] = page.url
    shot(page, "event")

    # A dead delivery is retried from its page.
    retry = page.get_by_role("button", name="Retry now")
    expect(retry).to_have_count(1)
    retry.click()
    expect(page.get_by_role("heading", name="Event", exact=True)).to_be_visible()
    report["retried"] = True

    def bulk(listing, link, action, noun, done):
        """Follows a listing's bulk link, reads the count, confirms, and checks that many
        were acted on; the count."""
        page.goto(f"{ADMIN}{listing}")
        page.get_by_role("link", name=link).click()
        count = int(page.locator(f"#{action.lower()}-count b").inner_text())
        shot(page, f"{action.lower()}-confirm")
        page.get_by_role("button", name=f"{action} {count} {noun}").click()
        expect(page.locator(f"#{done} b")).to_have_text(str(count))
        return count

    # Replay what a filter matches, after reading how many that is.
    report["replay_count"] = bulk(
        "/ui/events?route=shop",
        "Replay the events matching this filter…",
        "Replay",
        "event(s)",
        "replayed",
    )
    # Retry every dead letter of a destination, after reading how many that is.
    report["retry_count"] = bulk(
        "/ui/deliveries?status=dead&destination=crm",
        "Retry the deliveries matching this filter…",
        "Retry",
        "delivery(ies)",
        "retried",
    )

    # The live tail takes an event sent while it is open, without a reload.
    page.goto(f"{ADMIN}/ui/tail")
    expect(page.locator("#tail-state")).to_contain_text("following")
    before = page.locator("#tail tr").count()
    new_id = post_event("shop", {"order": "ord_live", "total": 1})
    expect(page.get_by_role("link", name=new_id)).to_be_visible(timeout=10_000)
    report["tail_rows_before"] = before - 1
    report["tail_saw"] = new_id
    shot(page, "live-tail")

    # The charts show this node's real numbers.
    page.goto(f"{ADMIN}/ui/charts")
    received = page.locator("polyline[data-series=received]")
    expect(received).to_have_count(1)
    report["chart_received"] = float(received.get_attribute("data-total"))
    report["chart_delivered"] = float(
        page.locator("polyline[data-series=delivered]").get_attribute("data-total")
    )
    report["chart_failed"] = float(
        page.locator("polyline[data-series=failed]").get_attribute("data-total")
    )
    shot(page, "charts")

    # The other pages render for a signed-in operator.
    for path, name, heading in [
        ("/ui/deliveries?status=dead", "dead-letters", "Dead letters"),
        ("/ui/deliveries", "deliveries", "Deliveries"),
        ("/ui/destinations", "destinations", "Destinations and backlog"),
        ("/ui/alerts", "alerts", "Alerts"),
        ("/ui/shadow", "shadow", "Shadow"),
    ]:
        page.goto(f"{ADMIN}{path}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        shot(page, name)

    assert not errors, f"script errors on the pages: {errors}"
    browser.close()

print(json.dumps(report))
