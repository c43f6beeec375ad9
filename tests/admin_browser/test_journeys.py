"""The admin's main journeys, in a real browser: first-run set-up, sign in, create a site and
copy its snippet, see the snippet's events arrive, preview and save recommendation rules, and
watch the dashboard count new events."""

from __future__ import annotations

import time

import pytest

from personalize.insights import set_holdout_share, site_report
from personalize.insights.simulate import simulate_traffic
from personalize.profiles import ingest_events
from personalize.sites import get_site, get_site_by_name

from .conftest import PASSWORD, send_events, sign_in, wait_for_text

pytestmark = pytest.mark.browser


def test_first_run_create_a_site_copy_its_snippet_and_see_events_arrive(admin_page, live_server, ctx, shoot):
    from personalize.admin.first_run import setup_token

    page, base = admin_page, live_server.url
    page.goto(base + "/admin/")
    page.wait_for_url("**/admin/setup")
    assert "personalize create-admin" in page.inner_text("#setup-locked"), "without the console's link, the page says where to find it"
    page.errors.clear()  # the browser logs the locked page's 403
    # the link `personalize serve` printed on its console
    page.goto(f"{base}/admin/setup?token={setup_token(ctx.config['SECRET_KEY'])}")
    page.fill("#email", "first@shop.example")
    page.fill("#password", PASSWORD)
    shoot(page, "setup", "main")
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    assert "No sites yet" in page.inner_text("main")

    page.fill("#name", "My shop")
    page.click("text=Create site")
    page.wait_for_url("**/admin/sites/*")
    assert page.inner_text("#secret-key").startswith("sk_"), "the secret key is shown once"
    site = get_site_by_name("My shop")

    page.click("#copy-snippet")
    wait_for_text(page, "#copy-snippet", "Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert f'data-shop="{site.public_key}"' in copied and "/static/widget.js" in copied
    assert "No event received yet" in page.inner_text("#live")

    send_events(base, site.public_key, [{"id": "e1", "type": "page_viewed", "visitor": "v1", "url": "https://my.shop/"}])
    wait_for_text(page, "#live-summary", "Last event (viewed a page)")
    assert "1 in the last hour" in page.inner_text("#live-summary")
    page.reload()
    shoot(page, "site", "main")
    assert not page.errors, page.errors


def test_sign_in_preview_recommendations_and_save_rules(admin_page, live_server, owner, trained, shoot):
    page, base = admin_page, live_server.url
    page.goto(base + "/admin/login")
    page.fill("#email", owner[0])
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "Wrong email or password" in page.inner_text("main")
    page.errors.clear()  # the browser logs the refused sign-in's 401
    sign_in(page, base, *owner)

    page.click("text=Test shop")
    page.click("nav.tabs >> text=Recommendations")
    assert "Trained" in page.inner_text("#model") and "Serves the fixed blend" in page.inner_text("#model-check")
    page.get_by_label("Search products to add: Pin (shown first, in this order; one id per line)").click()  # the picker
    page.keyboard.type("tea")
    page.locator('[role=listbox]:visible [role=option][data-product="tea-pot"]').click()
    page.locator('#picked-1 li[data-product="tea-pot"]').wait_for()
    page.fill("#bought_show", "run-shoe -> tea-cup")
    page.fill("#profile", "runner-0")
    page.click("#preview-button")
    first = page.locator("#preview li").first
    assert first.get_attribute("data-product") == "tea-pot" and "Recommended by the shop" in first.inner_text()
    assert page.locator("#preview li").nth(1).get_attribute("data-product") == "tea-cup"
    assert "Goes well with Trail running shoe" in page.inner_text("#preview")
    assert not (get_site(trained.id).settings or {}).get("rules"), "nothing saved by a preview"
    shoot(page, "recommendations", "main")

    page.click("#save-rules")
    wait_for_text(page, ".flash", "saved")
    from personalize.db import db

    db.session.expire_all()
    assert get_site(trained.id).settings["rules"] == {"pin": ["tea-pot"], "bought_show": {"run-shoe": ["tea-cup"]}}
    assert not page.errors, page.errors


def test_dashboard_updates_after_events(admin_page, live_server, owner, trained, shoot):
    page, base = admin_page, live_server.url
    s = get_site(trained.id)
    set_holdout_share(s, 0.3)
    # shoppers with one view each: enough of them in both groups for the lift and its interval
    categories = {"run-shoe": "running", "run-sock": "running", "run-gel": "running", "run-cap": "running",
                  "tea-pot": "tea", "tea-green": "tea", "tea-cup": "tea"}
    prices = {"run-shoe": 120.0, "run-sock": 12.0, "run-gel": 2.5, "run-cap": 20.0, "tea-pot": 45.0, "tea-green": 9.0, "tea-cup": 18.0}
    fans = {f"fan-{i}": ("run-sock" if i % 2 else "tea-green") for i in range(160)}
    ingest_events(s, [{"id": f"seen-{v}", "type": "product_viewed", "visitor": v, "product_id": p} for v, p in fans.items()])
    tastes = {v: {categories[p]: 1.0} for v, p in fans.items()}
    simulate_traffic(s, tastes, categories, prices, days=10, visits=2, limit=3, currency="EUR", seed=3)
    report = site_report(s.id)
    personal, held = report.by_strategy["personal"], report.by_strategy["holdout"]
    assert personal.ctr > held.ctr and personal.orders / personal.impressions > held.orders / held.impressions, \
        "lists that fit the shopper's taste are clicked and bought from more than best sellers"

    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{trained.id}/dashboard")
    before = int(page.inner_text("#kpi-orders").replace(",", ""))
    clicks = int(page.inner_text("#kpi-clicks").replace(",", ""))
    assert before > 0 and page.locator("#chart-ctr svg polyline").count() == 2
    assert page.locator("#lift svg circle").count() == 2, "the lift chart, once both groups are large enough"
    shoot(page, "dashboard", "main", max_height=1400)
    page.locator("#lift").scroll_into_view_if_needed()
    shoot(page, "dashboard-lift", "#lift", max_height=700)

    now = int(time.time() * 1000)
    send_events(base, s.public_key, [
        {"id": "d-i", "type": "rec_impression", "visitor": "runner-1", "rec_id": "r_new", "slot": "home", "strategy": "personal", "items": ["run-cap"], "ts": now},
        {"id": "d-c", "type": "rec_clicked", "visitor": "runner-1", "rec_id": "r_new", "slot": "home", "product_id": "run-cap", "position": 1, "strategy": "personal", "ts": now + 1},
        {"id": "d-o", "type": "order_completed", "visitor": "runner-1", "order_id": "d-o", "rec_id": "r_new", "revenue": 20.0,
         "items": [{"product_id": "run-cap", "quantity": 1, "price": 20.0}], "ts": now + 2},
    ])
    page.reload()
    assert int(page.inner_text("#kpi-orders").replace(",", "")) == before + 1
    assert int(page.inner_text("#kpi-clicks").replace(",", "")) == clicks + 1
    assert not page.errors, page.errors


def test_see_where_you_are_signed_in_and_sign_out_everywhere_else(admin_page, browser, live_server, owner, shoot):
    page, base = admin_page, live_server.url
    office = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
    other = browser.new_context(viewport={"width": 960, "height": 720}, user_agent=office)
    shared = other.new_page()
    shared.set_default_timeout(8000)
    try:
        sign_in(shared, base, *owner)
        sign_in(page, base, *owner)
        page.click("nav >> text=Account")
        rows = page.locator("#sessions tbody tr")
        assert rows.count() == 2
        assert "(this browser)" in page.inner_text("#sessions tr[aria-current=true]")
        assert "Firefox on Windows" in page.inner_text("#sessions"), "the other browser, named as a person would"
        assert "Headless Chrome on Linux" in page.inner_text("#sessions tr[aria-current=true]")
        shoot(page, "account-sessions", "#sessions")

        page.click("text=Sign out everywhere else")
        wait_for_text(page, ".flash", "Signed out 1 other session.")
        assert page.locator("#sessions tbody tr").count() == 1

        shared.reload()
        shared.wait_for_url("**/admin/login**")
        assert "Your session has ended: sign in again." in shared.inner_text("main")
        assert not page.errors, page.errors
    finally:
        other.close()
