"""Recommendations rendered by the widget on a shop page, against the real app."""

from __future__ import annotations

import pytest

from .support import BOOKS, SHOES, make_site, slot, wait_for

pytestmark = pytest.mark.browser


def home(shop, path="/", **slot_data) -> str:
    return shop.page(path, f"<h1>Home</h1>{slot(**slot_data)}{shop.snippet()}")


def books_in(items) -> int:
    return sum(1 for i in items if i in BOOKS)


def visit_product_then_home(shop, tab, product_id: str, stored) -> list[str]:
    tab.page.goto(f"{shop.url}/product/{product_id}")
    tab.rendered()
    tab.flush(0)
    wait_for(lambda: tab.visitor() and stored(visitor=tab.visitor(), type="product_viewed"),
             message="the product view to be stored")
    tab.page.goto(home(shop))
    return tab.rendered()[0]["items"]


def test_two_visitors_with_different_browsing_see_different_recommendations(reco_site, shop, new_tab, stored):
    shoe_fan, book_fan = new_tab(), new_tab()
    shoes_seen = visit_product_then_home(shop, shoe_fan, "s5", stored)
    books_seen = visit_product_then_home(shop, book_fan, "b5", stored)

    assert shoe_fan.visitor() != book_fan.visitor()
    assert shoes_seen != books_seen
    assert books_in(books_seen) > books_in(shoes_seen)
    rendered = book_fan.page.locator("[data-personalize-slot=home] [data-personalize-item]")
    assert rendered.evaluate_all("els => els.map(e => e.dataset.personalizeItem)") == books_seen
    assert not shoe_fan.errors and not book_fan.errors


def test_a_product_view_on_the_page_changes_the_next_recommendations(reco_site, shop, tab, stored):
    tab.page.goto(home(shop))
    before = tab.rendered()[0]["items"]
    assert books_in(before) < len(before), "a newcomer should first see the popular shoes"

    tab.page.evaluate("personalize('view', {product_id: 'b6'})")
    tab.flush(0)
    wait_for(lambda: stored(visitor=tab.visitor(), type="product_viewed", product_id="b6"),
             message="the view of b6 to be stored")
    tab.page.evaluate("personalize('render')")
    after = tab.rendered(2)[1]["items"]

    assert after != before
    assert books_in(after) > books_in(before)


def test_a_click_is_recorded_with_its_rec_id_and_attributes_a_later_add_to_cart(reco_site, shop, tab, stored):
    tab.page.goto(home(shop))
    shown = tab.rendered()[0]
    first = shown["items"][0]
    tab.page.locator(f'[data-personalize-item="{first}"]').click()
    tab.page.wait_for_url(f"{shop.url}/product/{first}")

    clicks = wait_for(lambda: stored(visitor=tab.visitor(), type="rec_clicked"), message="the click to be stored")
    assert len(clicks) == 1
    assert clicks[0]["rec_id"] == shown["rec_id"]
    assert clicks[0]["product_id"] == first
    assert clicks[0]["slot"] == "home"
    assert clicks[0]["position"] == 1

    # The product page the click led to: its view and a later add-to-cart carry the same rec_id.
    tab.page.evaluate(f"personalize('track', 'product_added', {{product_id: '{first}', quantity: 1, price: 21}})")
    tab.flush(0)
    added = wait_for(lambda: stored(visitor=tab.visitor(), type="product_added"), message="the add-to-cart")
    assert added[0]["rec_id"] == shown["rec_id"]
    viewed = stored(visitor=tab.visitor(), type="product_viewed", product_id=first)
    assert viewed and viewed[0]["rec_id"] == shown["rec_id"]
    assert not tab.errors


def test_a_product_title_with_markup_renders_as_text(reco_app, shop, tab):
    from personalize.records import ProductRecord

    nasty = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">Evil mug'
    products = [
        ProductRecord(id="evil", title=nasty, url=f"{shop.url}/product/evil", image="javascript:window.__pwned=3",
                      price=5.0, currency="EUR"),
        ProductRecord(id="plain", title="Plain mug", url="javascript:window.__pwned=4", price=4.0, currency="EUR"),
        ProductRecord(id="ok", title="Good mug", url=f"{shop.url}/product/ok", price=6.0, currency="EUR"),
    ]
    events = [{"id": f"x{i}", "type": "product_viewed", "visitor": f"v{i}", "product_id": pid}
              for i, pid in enumerate(["evil", "evil", "plain", "ok"])]
    evil_site = make_site(reco_app, shop.url, products, events)
    tab.page.goto(shop.page("/mugs", slot() + shop.snippet(key=evil_site["public_key"])))
    assert "evil" in tab.rendered()[0]["items"]

    item = tab.page.locator('[data-personalize-item="evil"]')
    assert item.locator(".pz-title").text_content() == nasty
    assert item.locator("img").count() == 0, "a javascript: image URL must not be used"
    # An item whose link is not http(s) is left out rather than rendered with a dangerous href.
    assert tab.page.locator('[data-personalize-item="plain"]').count() == 0
    tab.page.wait_for_timeout(300)
    assert tab.page.evaluate("window.__pwned") is None
    assert not tab.errors


def test_rendering_uses_an_open_shadow_root_with_parts(reco_site, shop, tab):
    tab.page.goto(home(shop, "/shadow", limit=3))
    shown = tab.rendered()[0]
    slot_el = tab.page.locator("[data-personalize-slot=home]")
    parts = slot_el.evaluate(
        "el => Array.from(el.shadowRoot.querySelectorAll('[part]')).map(e => e.getAttribute('part'))")
    assert {"list", "item", "image", "title", "price", "reason"} <= set(parts)
    assert len(shown["items"]) == 3
    # The shop's fallback stays in the light DOM (hidden by the shadow root), untouched.
    assert slot_el.evaluate("el => el.querySelector('#fallback') !== null")
    assert not tab.page.locator("#fallback").is_visible()


def test_light_render_mode_renders_into_the_page_with_pz_classes(reco_site, shop, tab):
    tab.page.goto(home(shop, "/light", render="light"))
    shown = tab.rendered()[0]
    slot_el = tab.page.locator("[data-personalize-slot=home]")
    assert slot_el.evaluate("el => el.shadowRoot") is None
    items = tab.page.locator("[data-personalize-slot=home] > ul.pz-list > li > a.pz-item[data-personalize-item]")
    assert items.count() == len(shown["items"]) == 4
    assert items.first.locator(".pz-title").text_content().startswith(("Running shoe", "Novel"))
    assert items.first.get_attribute("href").startswith(shop.url + "/product/")
    assert tab.page.locator("#fallback").count() == 0


@pytest.mark.parametrize(
    "style_src, init_script",
    [
        # Constructed stylesheets are not subject to style-src: no entry is needed at all.
        ("'none'", None),
        # Without them, the widget adds a <style> element carrying the script's nonce.
        ("'nonce-r4nd0m'", "window.CSSStyleSheet = undefined;"),
    ],
    ids=["constructed-stylesheet", "style-element-with-nonce"],
)
def test_a_strict_content_security_policy_is_enough(reco_site, shop, new_tab, reco, style_src, init_script):
    tab = new_tab(init_script)
    nonce = "r4nd0m"
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; connect-src {reco.url}; "
           f"img-src {shop.url}; style-src {style_src}")
    violations = []
    tab.page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    stub = f"<script nonce=\"{nonce}\">window.personalize=window.personalize||function(){{(personalize.q=personalize.q||[]).push(arguments)}}</script>"
    # No inline style attribute on this slot: the policy forbids them (the widget sets none).
    body = '<div data-personalize-slot="home" data-limit="4"><p id="fallback">Bestsellers</p></div>'
    tab.page.goto(shop.page("/csp", body + stub + shop.snippet(nonce=nonce), headers={"Content-Security-Policy": csp}))
    assert len(tab.rendered()[0]["items"]) == 4
    slot_el = tab.page.locator("[data-personalize-slot=home]")
    styles = slot_el.evaluate("el => el.shadowRoot.querySelectorAll('style').length")
    assert styles == (1 if init_script else 0)
    # The default theme applied: the list is a grid.
    assert slot_el.locator(".pz-list").evaluate("el => getComputedStyle(el).display") == "grid"
    assert not violations and not tab.errors


def test_the_rendered_event_carries_slot_rec_id_and_items(reco_site, shop, tab):
    tab.page.goto(home(shop, "/event"))
    shown = tab.rendered()[0]
    assert shown["slot"] == "home"
    assert shown["rec_id"]
    assert len(shown["items"]) == 4
    assert set(shown["items"]) <= set(SHOES + BOOKS)
