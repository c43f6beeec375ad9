"""Each slot type on a shop page, rendered by the widget against the real app: product page
(similar items, bought together), cart, recently viewed and a re-ordered listing."""

from __future__ import annotations

import time

import pytest

from .support import BOOKS, SHOES, catalog, make_site, wait_for

pytestmark = pytest.mark.browser


def basket_histories():
    """Shoe s1 is bought with s2, book b1 with b2; everyone views a little of their kind."""
    now = int(time.time() * 1000) - 3_600_000
    n = 0
    for group, items in (("shoe", SHOES), ("book", BOOKS)):
        for v in range(20):
            visitor = f"pages-{group}-{v}"
            for pid in (items[0], items[1 + v % 3]):
                n += 1
                yield {"id": f"pg{n}", "type": "product_viewed", "visitor": visitor, "ts": now + n, "product_id": pid}
            n += 1
            basket = [items[0], items[1], items[2 + v % 5]]
            yield {"id": f"pg{n}", "type": "order_completed", "visitor": visitor, "ts": now + n, "order_id": f"po{n}",
                   "items": [{"product_id": pid, "quantity": 1, "price": 25.0} for pid in basket]}


@pytest.fixture(scope="module")
def pages_site(reco_app, shop):
    return make_site(reco_app, shop.url, catalog(shop.url), basket_histories())


def page_with(shop, site, path, slot_html, **script_data):
    return shop.page(path, f"<h1>A page</h1>{slot_html}{shop.snippet(key=site['public_key'], **script_data)}")


def drawn(tab, slot_type):
    return tab.page.locator(f"[data-personalize-slot={slot_type}] [data-personalize-item]").evaluate_all(
        "els => els.map(e => e.dataset.personalizeItem)")


def test_product_slot_shows_items_like_the_product(pages_site, shop, tab):
    tab.page.goto(page_with(shop, pages_site, "/pg/product",
                            '<div data-personalize-slot="product" data-product="s1" data-limit="4"></div>'))
    shown = tab.rendered()[0]["items"]
    assert "s1" not in shown and shown[0] == "s2", shown
    assert all(i in SHOES for i in shown[:2])
    assert drawn(tab, "product") == shown
    [request] = tab.sent("/api/v1/recommendations")
    assert "product=s1" in request.url and "slot=product" in request.url
    assert not tab.errors


def test_product_slot_with_the_bought_together_strategy(pages_site, shop, tab):
    tab.page.goto(page_with(shop, pages_site, "/pg/together",
                            '<div data-personalize-slot="product" data-strategy="together" data-product-id="b1" data-limit="3"></div>'))
    shown = tab.rendered()[0]["items"]
    assert shown[0] == "b2" and "b1" not in shown, shown
    assert "strategy=together" in tab.sent("/api/v1/recommendations")[0].url
    assert not tab.errors


def test_cart_slot_never_shows_what_is_in_the_cart(pages_site, shop, tab):
    tab.page.goto(page_with(shop, pages_site, "/pg/cart",
                            '<div data-personalize-slot="cart" data-cart="s1, s2" data-limit="4"></div>'))
    shown = tab.rendered()[0]["items"]
    assert shown and {"s1", "s2"}.isdisjoint(shown), shown
    assert shown[0] in SHOES
    assert "cart=s1%2Cs2" in tab.sent("/api/v1/recommendations")[0].url
    assert not tab.errors


def test_recent_slot_lists_what_the_visitor_viewed_newest_first(pages_site, shop, tab, stored):
    tab.page.goto(page_with(shop, pages_site, "/pg/start", "<p>nothing yet</p>"))
    for pid in ("b3", "s4"):
        tab.page.evaluate(f"personalize('view', {{product_id: '{pid}'}})")
    tab.flush(0)
    wait_for(lambda: len(stored(site_id=pages_site["id"], visitor=tab.visitor(), type="product_viewed")) >= 2,
             message="the two views to be stored")
    tab.page.goto(page_with(shop, pages_site, "/pg/recent", '<div data-personalize-slot="recent" data-limit="4"></div>'))
    assert tab.rendered()[0]["items"] == ["s4", "b3"]
    assert not tab.errors


def test_listing_slot_shows_the_given_products_reordered(pages_site, shop, tab):
    tab.page.goto(page_with(shop, pages_site, "/pg/listing",
                            '<div data-personalize-slot="listing" data-products="b1,s1,b2,unknown" data-limit="3"></div>'))
    shown = tab.rendered()[0]["items"]
    assert shown == ["b1", "s1", "b2"]  # a newcomer: the shop's own order, unknown ids left out
    [request] = tab.sent("/api/v1/rank")
    assert request.method == "POST"
    assert not tab.errors


def test_a_bad_slot_leaves_the_page_as_it_was(pages_site, shop, tab):
    tab.page.goto(page_with(shop, pages_site, "/pg/bad",
                            '<div data-personalize-slot="listing" data-products=" , "><p id="keep">Our picks</p></div>'
                            '<div data-personalize-slot="product" data-strategy="nonsense" data-product="s1"><p id="keep2">More</p></div>'
                            '<div data-personalize-slot="cart" data-cart="s1">cart</div>'))
    tab.rendered()  # the good slot renders
    assert tab.page.locator("#keep").inner_text() == "Our picks"
    assert tab.page.locator("#keep2").inner_text() == "More"
    assert not tab.errors
