"""The demo shop in headless Chromium: personal recommendations, cart, checkout, sign-in, reset."""

from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from personalize.demo.catalog import demo_products
from personalize.demo.traffic import persona_affinities

from .conftest import engaged_visitors

pytestmark = pytest.mark.browser

CATEGORY_OF = {p.id: p.attributes["category_slug"] for p in demo_products()}
ITEMS = "[data-personalize-item]"  # Playwright's CSS selectors pierce the widget's open shadow root


class Visit:
    """One browser context (one visitor) and what its pages did."""

    def __init__(self, context, base_url: str):
        self.base_url = base_url
        self.page = context.new_page()
        self.page.set_default_timeout(8000)
        self.errors: list[str] = []
        self.requests: list = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("request", lambda request: self.requests.append(request))

    def go(self, path: str):
        self.page.goto(self.base_url + path)
        return self.page

    def shown(self) -> list[str]:
        self.page.wait_for_selector(ITEMS)
        return [a.get_attribute("data-personalize-item") for a in self.page.locator(ITEMS).all()]

    def events_sent(self) -> list[dict]:
        sent = []
        for request in self.requests:
            if request.url.endswith("/api/v1/events") and request.post_data:
                sent.extend(json.loads(request.post_data)["events"])
        return sent

    def wait_for_event(self, kind: str, timeout: float = 6.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events_sent() if e["type"] == kind]
            if found:
                return found[-1]
            self.page.wait_for_timeout(100)
        raise AssertionError(
            f"no {kind} event sent; sent: {[e['type'] for e in self.events_sent()]}"
        )


@pytest.fixture
def visitor(chromium, demo_server):
    """Factory: a new visitor, optionally carrying a known visitor id from the demo's history."""
    contexts = []

    def open_visit(visitor_id: str | None = None) -> Visit:
        context = chromium.new_context()
        contexts.append(context)
        if visitor_id:
            context.add_init_script(f"localStorage.setItem('pz_vid', {json.dumps(visitor_id)})")
        return Visit(context, demo_server.url)

    yield open_visit
    for context in contexts:
        context.close()


def test_home_shows_recommendations_within_three_seconds_and_only_talks_to_its_server(
    visitor, demo_server
):
    visit = visitor()
    started = time.monotonic()
    page = visit.go("/")
    page.wait_for_selector(ITEMS, timeout=3000)
    assert time.monotonic() - started < 3.0
    assert len(visit.shown()) == 8
    assert page.locator("[data-personalize-slot=home]").evaluate("el => !!el.shadowRoot")
    hosts = {urlsplit(r.url).netloc for r in visit.requests if r.url.startswith("http")}
    assert hosts == {urlsplit(demo_server.url).netloc}
    assert visit.errors == []


def test_two_visitors_from_the_history_see_their_own_recommendations(visitor):
    personas = engaged_visitors()
    runner = min(v for v, p in personas.items() if p == "runner")
    parent = min(v for v, p in personas.items() if p == "new parent")
    seen = {}
    for vid, persona in ((runner, "runner"), (parent, "new parent")):
        visit = visitor(vid)
        visit.go("/")
        seen[persona] = visit.shown()
        top = Counter(CATEGORY_OF[pid] for pid in seen[persona]).most_common(1)[0][0]
        assert top in persona_affinities(persona), (persona, seen[persona])
        assert visit.errors == []
    assert seen["runner"] != seen["new parent"]


def test_a_product_view_changes_the_next_recommendations(visitor):
    visit = visitor()
    visit.go("/")
    before = visit.shown()
    cat_tree = next(p for p in demo_products() if p.attributes["kind"] == "cat-tree" and p.in_stock)

    def views_it(e: dict) -> bool:
        return e["type"] == "product_viewed" and e.get("product_id") == cat_tree.id

    def carries_the_view(request) -> bool:
        # the home page's own batch may still be in flight when the product page opens: wait for this one
        return request.url.endswith("/api/v1/events") and bool(request.post_data) and any(
            views_it(e) for e in json.loads(request.post_data)["events"])

    with visit.page.expect_request_finished(carries_the_view):
        visit.go(f"/product/{cat_tree.id}")
    assert any(views_it(e) for e in visit.events_sent())
    visit.go("/")
    after = visit.shown()
    assert after != before
    assert sum(CATEGORY_OF.get(pid) == "pets" for pid in after) >= 2, after


def test_add_to_cart_and_checkout_are_tracked_and_stored(visitor, built):
    from personalize.profiles import profile_for_visitor, recent_interactions
    from personalize.recommend.data import CART, PURCHASE, VIEW

    app, info, _progress = built
    product = next(
        p for p in demo_products() if p.in_stock and p.attributes["kind"] == "running-shoes"
    )
    visit = visitor()
    page = visit.go(f"/product/{product.id}")
    page.click("[data-add-to-cart]")
    assert page.locator("[data-cart-count]").inner_text() == "1"
    added = visit.wait_for_event("product_added")
    assert added["product_id"] == product.id and added["price"] == product.price

    page = visit.go("/cart")
    assert product.title in page.locator("[data-cart-lines]").inner_text()
    page.click("[data-checkout]")
    assert page.locator("[data-order-done]").is_visible()
    order = visit.wait_for_event("order_completed")
    assert order["items"] == [{"product_id": product.id, "quantity": 1, "price": product.price}]
    assert order["revenue"] == product.price and order["currency"] == "EUR"
    assert page.locator("[data-cart-count]").inner_text() == "0"

    vid = page.evaluate("localStorage.getItem('pz_vid')")
    deadline = time.monotonic() + 5
    with app.app_context():
        while True:
            profile = profile_for_visitor(info["site_id"], vid)
            kinds = (
                {kind for pid, kind, *_ in recent_interactions(info["site_id"], profile)}
                if profile
                else set()
            )
            if PURCHASE in kinds or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert kinds >= {VIEW, CART, PURCHASE}
    assert visit.errors == []


def test_sign_in_identifies_the_visitor(visitor):
    visit = visitor()
    page = visit.go("/account")
    page.fill("#signin-email", "Ada@Example.com")
    page.click("form[data-signin] button")
    assert visit.wait_for_event("identify")["email"] == "ada@example.com"
    assert page.locator("[data-shop-account]").inner_text() == "ada@example.com"
    assert visit.errors == []


def test_switch_visitor_starts_over_as_someone_new(visitor):
    visit = visitor()
    page = visit.go("/product/P1003")
    page.wait_for_function("localStorage.getItem('pz_vid')")
    first = page.evaluate("localStorage.getItem('pz_vid')")
    page.click("text=Switch visitor")
    page.wait_for_selector(ITEMS)
    assert urlsplit(page.url).path == "/" and "reset" not in page.url
    second = page.evaluate("localStorage.getItem('pz_vid')")
    assert second and second != first
    assert visit.errors == []
