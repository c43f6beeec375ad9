"""An owner runs an experiment in a real browser: sets it up, starts it, reads the per-version
figures and chart after real traffic through the widget API, and rolls out the winner; at a
laptop's 1366 px and a phone's 390 px."""

from __future__ import annotations

import pytest
import requests

from personalize.experiments.arms import arm_of_rec_id

from .conftest import send_events, sign_in

pytestmark = pytest.mark.browser


def _no_sideways_scroll(page, boxes=("#arms", "#charts", "#headline")) -> None:
    # measured once the page's stylesheets apply: after a form's submit the new page's elements can be
    # read before its stylesheet has loaded, when its table is still laid out at full width
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    wide = page.evaluate(f"Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > {width + 1})"
                         ".map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + (e.textContent || '').trim().slice(0, 60))"
                         ".slice(0, 12)")  # named when the test fails
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide
    for selector in boxes:
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box, width)


def _traffic(base: str, key: str, visitors: int = 260) -> dict[int, int]:
    """Visitors ask the API for the home list and react as a widget reports it: version B's
    visitors buy one time in five, version A's one in twenty. Returns visitors per arm."""
    events, seen, t = [], {0: 0, 1: 0}, 1_760_000_000_000
    for n in range(visitors):
        visitor = f"shopper-{n}"
        answer = requests.get(f"{base}/api/v1/recommendations", params={"key": key, "visitor": visitor, "slot": "home", "limit": 4}, timeout=10).json()
        _experiment, arm = arm_of_rec_id(answer["rec_id"])
        seen[arm] += 1
        rec, pid = answer["rec_id"], answer["items"][0]["id"]
        events.append({"id": f"{visitor}-i", "type": "rec_impression", "visitor": visitor, "rec_id": rec, "slot": "home",
                       "strategy": answer["strategy"], "items": [i["id"] for i in answer["items"]], "ts": t + n * 10})
        if n % 3 == 0:
            events.append({"id": f"{visitor}-c", "type": "rec_clicked", "visitor": visitor, "rec_id": rec, "slot": "home",
                           "product_id": pid, "position": 1, "strategy": answer["strategy"], "ts": t + n * 10 + 1})
        if seen[arm] % (5 if arm == 1 else 20) == 0:
            events.append({"id": f"{visitor}-o", "type": "order_completed", "visitor": visitor, "order_id": f"o-{visitor}", "rec_id": rec,
                           "revenue": 40.0, "currency": "EUR", "items": [{"product_id": pid, "quantity": 1, "price": 40.0}], "ts": t + n * 10 + 2})
    for start in range(0, len(events), 100):  # batches of the widget's size
        send_events(base, key, events[start : start + 100])
    return seen


def test_an_owner_tests_best_sellers_against_personal_picks_and_rolls_out_the_winner(admin_page, live_server, owner, trained, shoot):
    page, base = admin_page, live_server.url
    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{trained.id}/experiments")
    page.fill("#name", "Best sellers on the home page?")
    page.select_option("#metric", "conversion")
    page.fill("#target_visitors", "200")
    page.fill("#arm1_name", "Best sellers")
    page.select_option("#arm1_strategy", "popular")
    page.click("#new-experiment button[type=submit]")
    assert "Not started" in page.inner_text("#headline")
    page.click("#start")
    assert page.inner_text("#status") == "running"

    seen = _traffic(base, trained.public_key)
    page.reload()
    headline = page.inner_text("#headline")
    assert "Version B “Best sellers” does better than A" in headline, headline
    assert page.inner_text("#arm-0 td[data-label=Visitors]") == f"{seen[0]:,}"
    assert page.inner_text("#arm-1 td[data-label=Visitors]") == f"{seen[1]:,}"
    assert page.locator("#charts svg").count() == 2  # the measure per version, and B against A with its range
    assert page.locator("#arm-1 .against .better").is_visible()
    _no_sideways_scroll(page)
    shoot(page, "experiment", "main")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    _no_sideways_scroll(page)
    assert page.locator("#rollout-1").is_visible()
    page.click("#rollout-1")
    assert page.inner_text("#status") == "rolled out"
    assert "everyone sees" in page.inner_text(".flash")

    after = requests.get(f"{base}/api/v1/recommendations", params={"key": trained.public_key, "visitor": "runner-1", "slot": "home"}, timeout=10).json()
    assert after["strategy"] == "popular" and arm_of_rec_id(after["rec_id"]) is None
    assert not page.errors, page.errors


def test_the_set_up_form_fits_a_phone_and_names_a_mistake(admin_page, live_server, owner, trained):
    page, base = admin_page, live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{trained.id}/experiments")
    _no_sideways_scroll(page, ())
    box = page.locator("#version-B").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 391
    page.fill("#name", "Mix test")
    page.click("#version-B summary")
    page.fill("#arm1_weight_item-item", "2")  # a mix for version B, but no name for it: only one version
    page.click("#new-experiment button[type=submit]")
    assert "Versions: give names to two versions or more" in page.inner_text("#form-error")
    assert page.input_value("#name") == "Mix test" and page.input_value("#arm1_weight_item-item") == "2"
    page.fill("#arm1_name", "More bought-together")
    page.click("#new-experiment button[type=submit]")
    assert "Not started" in page.inner_text("#headline")
    assert "bought together × 2" in page.inner_text("#arm-1")
    _no_sideways_scroll(page)
