"""Events the widget sends: the queue stub, impressions, single-page-app navigation."""

from __future__ import annotations

import pytest

from .support import slot, wait_for

pytestmark = pytest.mark.browser

STUB = "<script>window.personalize=window.personalize||function(){(personalize.q=personalize.q||[]).push(arguments)}</script>"


def test_calls_made_before_the_script_loads_are_replayed(reco_site, shop, tab, stored):
    calls = """<script>
      personalize('view', {product_id: 's2'});
      personalize('identify', {email: 'Ann@Example.com', traits: {plan: 'gold'}});
      personalize('track', 'product_added', {product_id: 's2', quantity: 2, price: 22, colour: 'red'});
    </script>"""
    url = shop.page("/queued", STUB + calls + slot() + shop.snippet(), title="Queued")
    tab.page.goto(url)
    tab.rendered()
    visitor = tab.visitor()
    types = {"page_viewed", "product_viewed", "identify", "product_added"}
    events = wait_for(lambda: [e for e in stored(visitor=visitor) if e["type"] in types] if
                      len(stored(visitor=visitor)) >= 4 else None, message="4 events")
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == {"page_viewed", "product_viewed", "identify", "product_added"}
    assert by_type["product_viewed"]["product_id"] == "s2"
    assert by_type["product_viewed"]["url"] == url
    assert by_type["page_viewed"]["properties"].get("title") == "Queued"
    assert by_type["product_added"]["properties"].get("colour") == "red"
    assert tab.page.evaluate("personalize.q") is None
    assert not tab.errors


def test_one_impression_per_rec_id_once_the_slot_is_visible(reco_site, shop, tab, stored):
    body = '<div style="height:2500px">Above the fold</div>' + slot() + '<div style="height:2500px"></div>'
    tab.page.goto(shop.page("/below", body + shop.snippet()))
    rec_id = tab.rendered()[0]["rec_id"]
    visitor = tab.visitor()
    wait_for(lambda: stored(visitor=visitor, type="page_viewed"), message="the page view")
    assert stored(type="rec_impression", rec_id=rec_id) == []

    tab.page.locator("[data-personalize-slot=home]").scroll_into_view_if_needed()
    impressions = wait_for(lambda: stored(type="rec_impression", rec_id=rec_id), message="the impression")
    assert impressions[0]["slot"] == "home"
    assert impressions[0]["visitor"] == visitor

    for _ in range(2):  # scrolling away and back does not count again
        tab.page.evaluate("window.scrollTo(0, 0)")
        tab.page.wait_for_timeout(150)
        tab.page.locator("[data-personalize-slot=home]").scroll_into_view_if_needed()
        tab.page.wait_for_timeout(150)
    tab.flush()
    assert len(stored(type="rec_impression", rec_id=rec_id)) == 1


def test_spa_navigation_sends_one_page_view_and_re_renders(reco_site, shop, tab, stored):
    tab.page.goto(shop.page("/spa/one", slot() + shop.snippet(), title="One"))
    first = tab.rendered()[0]
    visitor = tab.visitor()
    wait_for(lambda: stored(visitor=visitor, type="page_viewed"), message="the first page view")

    tab.page.evaluate("""() => {
      history.pushState({}, '', '/spa/two');
      history.pushState({}, '', '/spa/two');      // same route again: no new page view
      history.replaceState({}, '', '/spa/two#top'); // a hash only: no new page view
    }""")
    second = tab.rendered(2)[1]
    assert second["rec_id"] != first["rec_id"]
    views = wait_for(lambda: len(stored(visitor=visitor, type="page_viewed")) >= 2
                     and stored(visitor=visitor, type="page_viewed"), message="the second page view")
    tab.page.go_back()  # popstate to the first /spa/two: the same route, nothing new
    tab.page.go_back()  # popstate back to /spa/one
    tab.rendered(3)
    views = wait_for(lambda: len(stored(visitor=visitor, type="page_viewed")) >= 3
                     and stored(visitor=visitor, type="page_viewed"), message="the page view after going back")
    tab.flush()
    views = stored(visitor=visitor, type="page_viewed")
    assert [v["url"].removeprefix(shop.url).split("#")[0] for v in views] == ["/spa/one", "/spa/two", "/spa/one"]
    assert views[1]["properties"].get("referrer") == shop.url + "/spa/one"
    assert tab.page.evaluate("window.__rendered.length") == 3
    assert not tab.errors


def test_undelivered_events_are_kept_and_sent_later(reco_site, shop, tab, stored):
    tab.page.route("**/api/v1/events**", lambda route: route.abort())
    tab.page.add_init_script("navigator.sendBeacon = function () { return false; };")
    tab.page.goto(shop.page("/outbox", slot() + shop.snippet(product_id="s7")))
    tab.rendered()
    visitor = tab.visitor()
    outbox = wait_for(lambda: tab.page.evaluate("JSON.parse(localStorage.getItem('pz_outbox') || '[]')"),
                      message="events parked in the outbox")
    assert {e["type"] for e in outbox} >= {"page_viewed", "product_viewed"}
    assert stored(visitor=visitor) == []

    tab.page.unroute("**/api/v1/events**")
    tab.page.goto(shop.page("/outbox-2", slot() + shop.snippet()))
    tab.rendered()
    events = wait_for(lambda: len(stored(visitor=visitor)) >= 3 and stored(visitor=visitor),
                      message="the parked events delivered by the next page")
    assert [e["product_id"] for e in events if e["type"] == "product_viewed"] == ["s7"]
    # an event stays in the outbox until the server has answered for it, then the outbox empties
    wait_for(lambda: tab.storage().get("pz_outbox") is None, message="the outbox emptied")


def test_a_sloppy_call_costs_no_other_event(reco_site, shop, tab, stored):
    """The server refuses a whole batch over one bad event, so the widget cleans calls up first."""
    tab.page.goto(shop.page("/sloppy", slot() + shop.snippet()))
    tab.rendered()
    tab.page.evaluate("""() => {
      personalize('track', 'wishlist_added', {product_id: 's1'});   // unknown type: dropped
      personalize('track', 'product_added', {quantity: 1});          // no product: dropped
      personalize('identify', {traits: {plan: 'gold'}});             // neither email nor id: dropped
      personalize('track', 'product_added', {product_id: 's3', quantity: '2', items: [1], meta: {deep: 1}, note: 'gift'});
    }""")
    tab.flush()
    visitor = tab.visitor()
    added = wait_for(lambda: stored(visitor=visitor, type="product_added"), message="the add-to-cart")
    assert len(added) == 1 and added[0]["product_id"] == "s3"
    assert added[0]["properties"].get("note") == "gift"
    assert {e["type"] for e in stored(visitor=visitor)} >= {"page_viewed", "product_added"}
    assert not tab.errors
