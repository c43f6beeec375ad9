"""The widget never breaks a shop page: whatever the API does, the shop's fallback stays."""

from __future__ import annotations

import pytest

from .support import SlowApi, closed_port, slot, wait_for

pytestmark = pytest.mark.browser


def assert_fallback_kept(tab):
    slot_el = tab.page.locator("[data-personalize-slot=home]")
    assert slot_el.evaluate("el => el.shadowRoot") is None
    assert tab.page.locator("#fallback").is_visible()
    assert tab.page.locator("[data-personalize-item]").count() == 0
    assert tab.page.evaluate("window.__rendered.length") == 0
    assert not tab.errors, tab.errors


def test_api_down_keeps_the_fallback_without_page_errors(reco_site, shop, tab):
    api = f"http://127.0.0.1:{closed_port()}"
    tab.page.goto(shop.page("/down", slot() + shop.snippet(api=api)))
    tab.page.wait_for_timeout(300)
    tab.page.evaluate("personalize('track', 'product_added', {product_id: 's1', quantity: 1})")
    tab.flush()  # events go out to the dead API, and fail
    tab.page.wait_for_timeout(1200)  # the flush timer runs too
    assert_fallback_kept(tab)
    assert tab.page.evaluate("typeof personalize") == "function"


def test_a_slow_api_is_given_up_after_two_seconds(reco_site, shop, tab):
    answer = {"rec_id": "r_late", "slot": "home", "strategy": "popular",
              "items": [{"id": "s1", "title": "Late shoe", "url": f"{shop.url}/product/s1", "price": 1.0}]}
    slow = SlowApi(2.5, answer)
    try:
        tab.page.goto(shop.page("/slow", slot() + shop.snippet(api=slow.url)))
        tab.page.wait_for_timeout(3000)  # past the widget's 2 s budget and past the late answer
        assert_fallback_kept(tab)
    finally:
        slow.close()


@pytest.mark.parametrize(
    "status, body, content_type",
    [
        (200, "<html>not json</html>", "text/html"),
        (500, '{"error": {"code": "internal"}}', "application/json"),
        (200, '{"rec_id": "r_1", "items": "nope"}', "application/json"),
        (200, '{"rec_id": "r_1", "items": [null, 3, {"id": "x"}]}', "application/json"),
        (200, "null", "application/json"),
    ],
    ids=["html", "server-error", "items-not-a-list", "items-malformed", "null"],
)
def test_a_garbage_answer_keeps_the_fallback(reco_site, shop, tab, status, body, content_type):
    tab.page.route("**/api/v1/recommendations**", lambda route: route.fulfill(
        status=status, body=body, content_type=content_type,
        headers={"Access-Control-Allow-Origin": "*"}))
    tab.page.goto(shop.page("/garbage", slot() + shop.snippet()))
    tab.page.wait_for_load_state("networkidle")
    assert_fallback_kept(tab)


def test_the_script_included_twice_runs_once(reco_site, shop, tab, stored):
    tab.page.goto(shop.page("/twice", slot() + shop.snippet() + shop.snippet()))
    tab.rendered()
    tab.flush()
    wait_for(lambda: stored(visitor=tab.visitor(), type="page_viewed"), message="the page view")
    assert len(stored(visitor=tab.visitor(), type="page_viewed")) == 1
    assert len(tab.sent("/api/v1/recommendations")) == 1
    assert tab.page.evaluate("window.__rendered.length") == 1
    assert not tab.errors
