"""The admin in the shop owner's words, as a person sees it in Chromium: the lift verdict and its
chart tell one story in percentage points, events have human names, the segment builder suggests
and forgives."""

from __future__ import annotations

import time

import pytest

from personalize.profiles import ingest_events
from personalize.sites import get_site

from .conftest import sign_in, wait_for_text

pytestmark = pytest.mark.browser


def _visitors(site, group: str, strategy: str, n: int, buyers: int) -> None:
    """``n`` visitors shown one list each, ``buyers`` of them ordering afterwards."""
    ts = int(time.time() * 1000) - 3_600_000
    events = []
    for i in range(n):
        visitor = f"{group}-{i}"
        events.append({"id": f"{visitor}-i", "type": "rec_impression", "visitor": visitor, "rec_id": f"r_{visitor}",
                       "slot": "home", "strategy": strategy, "items": ["run-shoe"], "ts": ts})
        if i < buyers:
            events.append({"id": f"{visitor}-o", "type": "order_completed", "visitor": visitor, "order_id": f"o-{visitor}",
                           "revenue": 20.0, "items": [{"product_id": "run-sock", "quantity": 1, "price": 20.0}], "ts": ts + 1000})
    for start in range(0, len(events), 100):
        ingest_events(site, events[start:start + 100])


@pytest.mark.parametrize("buyers, expected", [(60, "better"), (12, "unsure")])
def test_the_lift_verdict_and_its_chart_use_one_interval_in_percentage_points(admin_page, live_server, owner, site, buyers, expected):
    s = get_site(site.id)
    _visitors(s, "p", "personal", 200, buyers)
    _visitors(s, "h", "holdout", 200, 10)
    sign_in(admin_page, live_server.url, *owner)
    admin_page.goto(f"{live_server.url}/admin/sites/{site.id}/dashboard?days=7")
    conversion = admin_page.locator("#lift tr[data-verdict]").first
    assert conversion.get_attribute("data-verdict") == expected
    cells = conversion.locator("td").all_inner_texts()
    assert cells[2].count(" pp") == 3 and "%" not in cells[2], cells  # difference and its interval: percentage points
    verdict = admin_page.locator("#lift-verdict [data-verdict]").first
    assert verdict.get_attribute("data-verdict") == expected
    # the verdict quotes the table's interval, word for word
    interval = cells[2].split("(")[1].rstrip(")").replace(" to ", " to ")
    assert interval in verdict.inner_text(), (interval, verdict.inner_text())
    # the chart's first estimate is coloured by the same interval
    colour = {"better": "good", "worse": "bad", "unsure": "unsure"}[expected]
    assert colour in admin_page.locator("#lift .lift-chart circle.estimate").first.get_attribute("class")
    assert "percentage points" in admin_page.locator("#lift-verdict").inner_text()
    assert admin_page.locator("#demo-holdout").count() == 0, "only the demo explains its simulated holdout"
    kinds = admin_page.locator("#per-strategy tbody td:first-child").all_inner_texts()
    assert kinds == ["Holdout: best sellers, for comparison", "Personal recommendations"], kinds


def test_the_demo_dashboard_explains_its_holdout(admin_page, live_server, owner, site):
    from personalize.db import db

    s = get_site(site.id)
    s.settings = {**(s.settings or {}), "demo_traffic": {"visitors": 1, "seed": 1}, "demo_holdout": 0.2}
    db.session.commit()
    sign_in(admin_page, live_server.url, *owner)
    admin_page.goto(f"{live_server.url}/admin/sites/{site.id}/dashboard")
    note = admin_page.locator("#demo-holdout")
    assert note.is_visible()
    assert "20 %" in note.inner_text() and "best sellers" in note.inner_text()


def test_a_profile_shows_events_in_words(admin_page, live_server, owner, site):
    s = get_site(site.id)
    ts = int(time.time() * 1000) - 60_000
    ingest_events(s, [
        {"id": "w-i", "type": "rec_impression", "visitor": "runner-0", "rec_id": "r_6a21ffee", "slot": "home", "strategy": "personal", "items": ["run-shoe"], "ts": ts},
        {"id": "w-c", "type": "rec_clicked", "visitor": "runner-0", "rec_id": "r_6a21ffee", "slot": "home", "product_id": "run-shoe", "position": 1, "ts": ts + 1000},
    ])
    from personalize.profiles.identity import profile_for_visitor

    profile_id = profile_for_visitor(site.id, "runner-0")
    sign_in(admin_page, live_server.url, *owner)
    admin_page.goto(f"{live_server.url}/admin/sites/{site.id}/profiles/{profile_id}")
    text = admin_page.locator("main").inner_text()
    for internal in ("rec_impression", "rec_clicked", "product_viewed", "order_completed", "r_6a21ffee"):
        assert internal not in text, internal
    timeline = admin_page.locator("#timeline").inner_text()
    assert "Was shown recommendations" in timeline and "Clicked a recommendation" in timeline and "Bought" in timeline


def test_the_segment_builder_suggests_forgives_case_and_starts_without_an_error(admin_page, live_server, owner, site):
    from personalize.segments.store import get_segment

    sign_in(admin_page, live_server.url, *owner)
    admin_page.goto(f"{live_server.url}/admin/sites/{site.id}/segments/new")
    # an empty form is not a mistake
    wait_for_text(admin_page, "#live-count", "Add a condition")
    assert admin_page.locator("main .error").count() == 0
    assert "muted" in admin_page.locator("#live-count").get_attribute("class")
    # fields come with words, categories and values from the shop's own data
    assert admin_page.locator("#fields option[value='orders.total']").get_attribute("label") == "Total spent"
    assert admin_page.locator("#values-category option").evaluate_all("os => os.map(o => o.value)") == ["running", "tea"]
    assert admin_page.locator("#b0_category").get_attribute("list") == "values-category"
    admin_page.fill("#c0_field", "scores.rfm_segment")
    assert admin_page.locator("#c0_value").get_attribute("list") == "values-scores-rfm_segment"
    admin_page.fill("#c0_field", "")
    # the raw rule is one click away, not in the way
    assert not admin_page.locator("#rule_json").is_visible()
    admin_page.click("#raw-rule summary")
    assert admin_page.locator("#rule_json").is_visible()
    admin_page.click("#raw-rule summary")
    # a category typed in another case finds the catalogue's
    admin_page.select_option("#b0_event", "purchased")
    assert admin_page.locator("#b0_event option:checked").inner_text() != "purchased", "events have human names"
    admin_page.fill("#b0_category", "TEA")
    wait_for_text(admin_page, "#live-count", "12 profiles match")
    admin_page.fill("#key", "tea-buyers")
    admin_page.fill("#seg-name", "Tea buyers")
    admin_page.click("#save-segment")
    admin_page.wait_for_url("**/segments/tea-buyers")
    assert get_segment(site.id, "tea-buyers").rule == {"and": [{"behaviour": {"event": "purchased", "category": "tea", "min": 1}}]}
    assert "bought" in admin_page.locator("#rule-words").inner_text().lower()
