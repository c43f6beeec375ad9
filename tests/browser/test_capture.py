"""Opt-in capture of a shop's existing e-commerce data layer (``data-capture``), in Chromium, on
pages that have only a GA4 ``dataLayer`` (or Segment's ``analytics``) and no ``personalize`` call."""

from __future__ import annotations

import uuid

import pytest

from .support import slot, wait_for

pytestmark = pytest.mark.browser


def ga4_page(shop, body: str, **data: str) -> str:
    """A page whose only tracking is GA4's: a dataLayer filled before the widget loads."""
    return shop.page(f"/ga4-{uuid.uuid4().hex[:8]}", body + slot() + shop.snippet(capture="ga4", **data))


VIEW_ITEM = ("<script>window.dataLayer = window.dataLayer || [];"
             "dataLayer.push({event: 'view_item', ecommerce: {currency: 'EUR', value: 23, items: [{item_id: 's3', item_name: 'Shoe', price: 23}]}});"
             "</script>")


def purchase(order_id: str, via: str = "push") -> str:
    data = (f"{{transaction_id: '{order_id}', value: 70.5, currency: 'EUR', "
            "items: [{item_id: 's1', price: 21, quantity: 2}, {item_id: 'b2', price: 28.5, quantity: 1}]}")
    if via == "gtag":
        return f"<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments)}} gtag('event', 'purchase', {data});</script>"
    return f"<script>window.dataLayer = window.dataLayer || []; dataLayer.push({{ecommerce: null}}); dataLayer.push({{event: 'purchase', ecommerce: {data}}});</script>"


def test_ga4_view_add_to_cart_and_purchase_arrive_without_a_track_call(reco_site, shop, tab, stored):
    tab.page.goto(ga4_page(shop, VIEW_ITEM))
    tab.rendered()
    # later pushes, as a theme's "add to cart" button makes them
    wait_for(lambda: tab.page.evaluate("dataLayer.push !== Array.prototype.push"), message="capture.js to wrap dataLayer.push")
    tab.page.evaluate("dataLayer.push({event: 'add_to_cart', ecommerce: {currency: 'EUR', value: 42, items: [{item_id: 's3', price: 21, quantity: 2}]}})")
    tab.page.evaluate("dataLayer.push({event: 'page_view'}); dataLayer.push({event: 'add_to_cart', ecommerce: {items: [{item_name: 'no id'}]}})")
    tab.flush(0)
    visitor = tab.visitor()
    wait_for(lambda: stored(visitor=visitor, type="product_added"), message="the captured add-to-cart")
    views = stored(visitor=visitor, type="product_viewed")
    assert [v["product_id"] for v in views] == ["s3"]
    added = stored(visitor=visitor, type="product_added")
    assert [a["product_id"] for a in added] == ["s3"], "the item without an id is skipped"
    assert {k: added[0]["properties"][k] for k in ("quantity", "price", "currency")} == {"quantity": 2.0, "price": 21.0, "currency": "EUR"}
    assert not tab.errors


def test_a_purchase_in_the_data_layer_is_one_order_even_when_the_shop_also_tracks_it(reco_site, reco_app, shop, new_tab, stored):
    from sqlalchemy import select

    from personalize.db import db
    from personalize.models import Interaction, Order

    order_id = f"T-{uuid.uuid4().hex[:8]}"
    own_call = (f"<script>window.personalize=window.personalize||function(){{(personalize.q=personalize.q||[]).push(arguments)}};"
                f"personalize('track', 'order_completed', {{order_id: '{order_id}', revenue: 70.5, currency: 'EUR', "
                "items: [{product_id: 's1', quantity: 2, price: 21}, {product_id: 'b2', quantity: 1, price: 28.5}]});</script>")
    tab = new_tab()
    url = ga4_page(shop, own_call + purchase(order_id))
    tab.page.goto(url)
    tab.rendered()
    tab.flush(0)
    visitor = tab.visitor()
    wait_for(lambda: stored(visitor=visitor, type="order_completed"), message="the order event")
    tab.page.reload()  # a thank-you page seen twice pushes its purchase again
    tab.rendered()
    tab.flush(500)
    wait_for(lambda: not tab.storage().get("pz_outbox"), message="the outbox to be sent")
    orders = stored(visitor=visitor, type="order_completed")
    assert len(orders) == 1 and orders[0]["event_id"] == f"o:{order_id}"
    with reco_app.app_context():
        row = db.session.scalars(select(Order).where(Order.site_id == reco_site["id"], Order.external_id == order_id)).one()
        lines = db.session.scalars(select(Interaction).where(Interaction.order_id == row.id)).all()
    assert row.total == 70.5 and row.currency == "EUR"
    assert sorted((i.product_id, i.quantity) for i in lines) == [("b2", 1.0), ("s1", 2.0)]


def test_gtag_calls_are_captured_too(reco_site, shop, tab, stored):
    order_id = f"G-{uuid.uuid4().hex[:8]}"
    tab.page.goto(ga4_page(shop, purchase(order_id, via="gtag")))
    tab.rendered()
    tab.flush(0)
    visitor = tab.visitor()
    wait_for(lambda: stored(visitor=visitor, type="order_completed"), message="the gtag purchase")
    assert stored(visitor=visitor, type="order_completed")[0]["event_id"] == f"o:{order_id}"


def test_without_the_attribute_nothing_is_captured_and_no_second_script_loads(reco_site, shop, tab, stored):
    tab.page.goto(shop.page(f"/no-capture-{uuid.uuid4().hex[:6]}", VIEW_ITEM + slot() + shop.snippet()))
    tab.rendered()
    tab.flush(300)
    assert not tab.sent("/static/capture.js")
    assert tab.page.evaluate("dataLayer.push === Array.prototype.push")
    assert not stored(visitor=tab.visitor(), type="product_viewed")


def test_a_capture_script_that_fails_to_load_changes_nothing_else(reco_site, shop, tab):
    tab.page.route("**/static/capture.js", lambda route: route.abort("blockedbyclient"))
    tab.page.goto(ga4_page(shop, VIEW_ITEM + "<p id='own'>shop script ran</p>"))
    shown = tab.rendered()[0]["items"]
    assert shown and not tab.errors
    assert tab.page.locator("#own").count() == 1


def test_segment_ecommerce_events_are_captured(reco_site, shop, tab, stored):
    # analytics.js as a shop has it: track() calls its 'track' listeners with (event, properties)
    analytics = ("<script>window.analytics = {initialized: true, handlers: [], on: function (name, fn) { if (name === 'track') this.handlers.push(fn); },"
                 " track: function (event, props) { this.handlers.forEach(function (fn) { fn(event, props, {}); }); }};</script>")
    tab.page.goto(shop.page(f"/segment-{uuid.uuid4().hex[:6]}", analytics + slot() + shop.snippet(capture="segment")))
    tab.rendered()
    wait_for(lambda: tab.page.evaluate("analytics.handlers.length"), message="capture.js to listen")
    order_id = f"S-{uuid.uuid4().hex[:8]}"
    tab.page.evaluate("analytics.track('Product Viewed', {product_id: 'b4', price: 24})")
    tab.page.evaluate("analytics.track('Product Added', {product_id: 'b4', quantity: 1, price: 24})")
    tab.page.evaluate(f"analytics.track('Order Completed', {{order_id: '{order_id}', total: 24, currency: 'EUR', products: [{{product_id: 'b4', quantity: 1, price: 24}}]}})")
    tab.page.evaluate("analytics.track('Signed Up', {plan: 'gold'})")
    tab.flush(0)
    visitor = tab.visitor()
    wait_for(lambda: stored(visitor=visitor, type="order_completed"), message="the Segment order")
    assert [e["type"] for e in stored(visitor=visitor) if e["type"] != "page_viewed" and not e["type"].startswith("rec_")] == [
        "product_viewed", "product_added", "order_completed"]
    assert stored(visitor=visitor, type="order_completed")[0]["event_id"] == f"o:{order_id}"
