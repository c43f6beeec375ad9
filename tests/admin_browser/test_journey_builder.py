"""Journeys in a real browser: start from a template, edit steps in the vertical flow (no JSON),
add a condition, see fields follow the trigger chosen, set up email and send a test to a real
SMTP server, activate, and watch a customer go through: counts on the steps, the report, and
the journey on the customer's profile page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from journeys.conftest import smtp_server  # noqa: F401  (a real SMTP server on loopback)
from journeys.support import customer
from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyEnrollment
from personalize.models import utcnow
from personalize.sites import get_site

from .conftest import send_events, sign_in, wait_for_text

pytestmark = pytest.mark.browser


def test_build_activate_and_follow_a_cart_abandonment_journey(admin_page, live_server, owner, site, smtp_server, shoot):  # noqa: F811
    page, base = admin_page, live_server.url
    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{site.id}/journeys")
    assert "No journey yet" in page.inner_text("main")
    page.click("#template-cart-abandonment button[type=submit]")
    page.wait_for_url("**/journeys/cart-abandonment")
    assert page.inner_text("#step-s1 .step-text") == "Wait 1 hour"
    assert page.inner_text("#step-s2 .step-text").startswith("Email “You left something in your cart”")

    # edit the first wait in its own form
    page.click("#step-s1 > details > summary")
    page.fill("#step-s1 input[name=amount]", "30")
    page.select_option("#step-s1 select[name=unit]", "minutes")
    page.click("#step-s1 .step-form button[type=submit]")
    wait_for_text(page, ".flash", "Step s1 saved")
    assert page.inner_text("#step-s1 .step-text") == "Wait 30 minutes"

    # a condition below it, edited with condition rows
    page.select_option("#step-s1 > form.add-step select[name=type]", "branch")
    page.click("#step-s1 > form.add-step button")
    wait_for_text(page, ".flash", "added as step s5")
    page.click("#step-s5 > details > summary")
    page.fill("#step-s5 input[name=rule_c0_value]", "2")
    page.click("#step-s5 .step-form button[type=submit]")
    wait_for_text(page, ".flash", "Step s5 saved")
    assert "number of orders ≥ 2" in page.inner_text("#step-s5 .step-text")
    assert page.locator("#step-s5 .branch").count() == 2, "Yes and No branches"

    # the trigger form shows the fields of the trigger chosen
    page.click("#trigger > details > summary")
    assert page.locator("#trigger_event").is_visible() and not page.locator("#trigger_segment").is_visible()
    assert not page.locator("#date_field").is_visible()
    page.select_option("#trigger_type", "segment_entered")
    assert page.locator("#trigger_segment").is_visible() and not page.locator("#trigger_event").is_visible()
    page.select_option("#trigger_type", "date")
    assert page.locator("#date_field").is_visible() and not page.locator("#trigger_segment").is_visible()
    page.select_option("#trigger_type", "event")
    page.click("#trigger > details > summary")
    shoot(page, "journey-builder", "#steps")

    # email settings against a real SMTP server, and a test send
    page.goto(f"{base}/admin/sites/{site.id}/email-settings")
    page.fill("#smtp_host", smtp_server.hostname)
    page.fill("#smtp_port", str(smtp_server.port))
    page.select_option("#smtp_security", "none")
    page.fill("#from_email", "shop@shop.example")
    page.fill("#shop_url", "https://shop.example")
    page.fill("#server_url", base)
    page.click("#save-email-settings")
    wait_for_text(page, ".flash", "Email settings saved")
    page.goto(f"{base}/admin/sites/{site.id}/journeys/cart-abandonment")
    page.click("#step-s2 > details > summary")
    page.fill("#step-s2 .test-send input[name=to]", "me@shop.example")
    page.click("#step-s2 .test-send button")
    wait_for_text(page, ".flash", "Test email sent to me@shop.example")
    [test] = smtp_server.mailbox.to("me@shop.example")
    assert test["Subject"] == "[Test] You left something in your cart"

    page.click("#journey-activate")
    wait_for_text(page, "#journey-status", "active")

    # a customer adds to the cart: the server's inbox enters them; the runner sends after 30 minutes
    ann = customer(get_site(site.id), "ann-v", "ann@example.com", first_name="Ann")
    send_events(base, site.public_key, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe"}])
    for _ in range(400):  # the server's inbox thread enters her (the request does not wait for it)
        if db.session.scalar(select(func.count()).select_from(JourneyEnrollment)):
            break
        db.session.remove()
        page.wait_for_timeout(50)
    assert db.session.scalar(select(func.count()).select_from(JourneyEnrollment)) == 1
    later = utcnow() + timedelta(minutes=31)
    if not 8 <= later.hour < 21:  # the template's quiet hours (21:00-08:00, the shop's UTC) would hold the email
        later = (later + timedelta(days=1 if later.hour >= 21 else 0)).replace(hour=12, minute=0)
    run_due(now=later)
    assert [m["to"] for m in smtp_server.mailbox.messages if "ann@example.com" in m["to"]] == [["ann@example.com"]]
    page.reload()
    assert "1 reached" in page.inner_text("#step-s1 .counts") and "1 acted" in page.inner_text("#step-s2 .counts")
    assert page.inner_text("#kpi-entered") == "1"
    page.goto(f"{base}/admin/sites/{site.id}/profiles/{ann}")
    entry = page.inner_text("#journeys-of-profile")
    assert "Cart abandonment" in entry and "done: “You left something in your cart”" in entry
    assert not page.errors, page.errors
