"""A shop owner's first hour, in Chromium: products imported from an order history (no links, no
images, no currency), mistakes that used to look like a bare CORS error, the site page's live
check of refused requests, and the server's front door."""

from __future__ import annotations

import uuid

import pytest

from personalize.records import ProductRecord

from .support import closed_port, make_site, slot, wait_for

pytestmark = pytest.mark.browser


def _warnings(tab) -> list[str]:
    found: list[str] = []
    tab.page.on("console", lambda m: found.append(m.text) if m.type == "warning" else None)
    return found


@pytest.fixture(scope="module")
def imported_shop(reco_app, shop):
    """A site as `import-orders` leaves it: products with a title and a price only, the currency
    taken from the orders' country; a few products have a link (and fewer an image) since."""
    from personalize.catalog.currency import set_site_currency
    from personalize.sites import get_site

    products = [ProductRecord(id=f"imp{i}", title=f"Imported {i}", price=2.5 + i) for i in range(1, 7)]
    products[0] = ProductRecord(id="imp1", title="Imported 1", price=3.5, url=f"{shop.url}/product/imp1", image=f"{shop.url}/img/imp1.svg")
    products[1] = ProductRecord(id="imp2", title="Imported 2", price=4.5, url=f"{shop.url}/product/imp2")
    products[2] = ProductRecord(id="imp3", title="Imported 3", price=5.5, url="   ", image=f"{shop.url}/img/imp3.svg")
    history = [{"id": f"imp-h{i}", "type": "order_completed", "visitor": f"imp-v{i}", "ts": 1_700_000_000_000 + i, "order_id": f"imp-o{i}",
                "items": [{"product_id": f"imp{1 + i % 6}", "quantity": 1, "price": 3.0}]} for i in range(30)]
    info = make_site(reco_app, shop.url, products, history)
    with reco_app.app_context():
        set_site_currency(get_site(info["id"]), "GBP", "most orders come from United Kingdom")
    return info


def test_products_without_a_link_are_left_out_and_without_an_image_have_no_img(imported_shop, shop, tab):
    tab.page.goto(shop.page(f"/imported-{uuid.uuid4().hex[:6]}", slot(limit=6) + shop.snippet(key=imported_shop["public_key"])))
    shown = tab.rendered()[0]["items"]
    assert sorted(shown) == ["imp1", "imp2"], "only the products with a usable link are drawn"
    items = tab.page.locator("[data-personalize-slot] [data-personalize-item]")
    hrefs = items.evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith(shop.url + "/product/imp") for h in hrefs), "no link points at the current page"
    with_image = tab.page.locator("[data-personalize-slot] [data-personalize-item=imp1] img")
    assert with_image.count() == 1 and with_image.get_attribute("src") == f"{shop.url}/img/imp1.svg"
    assert tab.page.locator("[data-personalize-slot] [data-personalize-item=imp2] img").count() == 0, "an empty image draws no img"
    prices = tab.page.locator("[data-personalize-slot] .pz-price").all_text_contents()
    assert prices and all(p.startswith("£") for p in prices), prices  # the site's currency, not a guessed euro
    assert not tab.errors


def test_without_any_currency_prices_are_plain_numbers(reco_app, shop, tab):
    info = make_site(reco_app, shop.url, [ProductRecord(id="nc1", title="No currency", price=12.5, url=f"{shop.url}/product/nc1")],
                     [{"id": "nc-h1", "type": "product_viewed", "visitor": "nc-v", "ts": 1_700_000_000_000, "product_id": "nc1"}])
    tab.page.goto(shop.page("/no-currency", slot(limit=2) + shop.snippet(key=info["public_key"])))
    tab.rendered()
    assert tab.page.locator("[data-personalize-slot] .pz-price").all_text_contents() == ["12.50"]


def test_a_wrong_key_is_one_console_warning_with_the_servers_reason(reco_site, shop, tab):
    warnings = _warnings(tab)
    tab.page.goto(shop.page("/wrong-key", slot() + slot() + shop.snippet(key="pk_not_a_real_key_123")))
    tab.page.evaluate("personalize('track', 'product_added', {product_id: 's1'})")
    tab.flush(600)
    wait_for(lambda: warnings, message="a console warning")
    tab.page.wait_for_timeout(300)
    ours = [w for w in warnings if w.startswith("personalize:")]
    assert ours == ["personalize: unknown or revoked key (401 invalid_key)"], warnings  # three refused requests, one line
    assert tab.page.locator("#fallback").count() == 2, "both slots keep their fallback"


def test_an_origin_not_allowed_says_so_and_the_site_page_shows_the_refusals(reco_app, reco, shop, new_tab, browser):
    from personalize.admin.users import create_admin_user

    info = make_site(reco_app, "https://the-real-shop.example", [ProductRecord(id="x1", title="X", url="https://the-real-shop.example/x1")],
                     [{"id": "x-h1", "type": "product_viewed", "visitor": "x-v", "ts": 1_700_000_000_000, "product_id": "x1"}])
    tab = new_tab()
    warnings = _warnings(tab)
    tab.page.goto(shop.page("/other-origin", slot() + shop.snippet(key=info["public_key"])))
    tab.flush(600)
    wait_for(lambda: [w for w in warnings if w.startswith("personalize:")], message="a console warning")
    ours = [w for w in warnings if w.startswith("personalize:")]
    assert ours == [f"personalize: {shop.url} is not an allowed origin of this site; add it in the admin (403 origin_not_allowed)"], warnings

    email = f"owner-{uuid.uuid4().hex[:6]}@shop.example"
    with reco_app.app_context():
        create_admin_user(email, "correct horse battery", "owner")
    admin = new_tab().page
    admin.goto(reco.url + "/admin/login")
    admin.fill("#email", email)
    admin.fill("#password", "correct horse battery")
    admin.click("button[type=submit]")
    admin.wait_for_url("**/admin/")
    admin.goto(f"{reco.url}/admin/sites/{info['id']}")
    line = admin.locator("#refused-list li").first
    line.wait_for(timeout=8000)  # the live check polls every few seconds; refusals are stored within a second
    text = line.text_content()
    assert f"from {shop.url} refused: origin not allowed" in text, text
    assert text.startswith(("2 requests", "1 request")), text  # the recommendation request and the events batch
    # another visit counts on the same line, without a reload of the admin page
    other = new_tab()
    other.page.goto(shop.page("/other-origin", slot() + shop.snippet(key=info["public_key"])))
    other.flush(300)
    wait_for(lambda: int(admin.locator("#refused-list li").first.text_content().split()[0]) >= 3, timeout=10,
             message="the live check to count the new refusals")
    assert admin.locator("#refused-list li").count() == 1


def test_a_server_that_is_down_is_one_console_warning(shop, tab):
    warnings = _warnings(tab)
    down = f"http://127.0.0.1:{closed_port()}"
    tab.page.goto(shop.page("/down", slot() + f'<script async src="{shop.reco_url}/static/widget.js" data-shop="pk_whatever_1234" data-api="{down}"></script>'))
    tab.flush(600)
    wait_for(lambda: [w for w in warnings if w.startswith("personalize:")], message="a console warning")
    tab.page.wait_for_timeout(500)
    ours = [w for w in warnings if w.startswith("personalize:")]
    assert ours == [f"personalize: no answer from {down}; is the server running and reachable?"], warnings
    assert tab.page.locator("#fallback").count() == 1 and not tab.errors


def test_the_front_door_points_to_the_admin_and_the_docs(reco, tab):
    tab.page.goto(reco.url + "/")
    assert tab.page.locator("h1").text_content() == "personalize is running"
    tab.page.get_by_role("link", name="Open the admin").click()
    tab.page.wait_for_url("**/admin/**")
    tab.page.goto(reco.url + "/")
    assert tab.page.get_by_role("link", name="Embedding the widget").get_attribute("href").endswith("/docs/widget.md")
