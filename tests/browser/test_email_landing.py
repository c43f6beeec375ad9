"""Arriving from a journey email: the link's click-through token (``pz_token``) proves who the
visitor is, and ``pz_rec`` credits the list the product was chosen in; both leave the address at
once, so no page URL the widget reports (or the visitor shares) carries them."""

from __future__ import annotations

import pytest

from .support import wait_for

pytestmark = pytest.mark.browser


def test_a_link_from_a_journey_email_identifies_the_visitor_and_credits_the_email(reco_app, reco_site, shop, tab, stored):
    from personalize.profiles import ingest_events
    from personalize.profiles.identity import EMAIL, VISITOR, lookup
    from personalize.profiles.trust import make_token
    from personalize.sites import get_site

    with reco_app.app_context():
        site = get_site(reco_site["id"])
        ingest_events(site, [{"id": "landing-ann-id", "type": "identify", "visitor": "landing-ann-laptop", "email": "ann.landing@example.com"}])
        ann = lookup(site.id, EMAIL, ["ann.landing@example.com"])["ann.landing@example.com"]
        token = make_token(site.id, email="ann.landing@example.com")
    url = f"{shop.url}/product/s2?utm_source=personalize&pz_rec=r_mail42&pz_token={token}"
    tab.page.goto(url)
    assert "pz_token" not in tab.page.evaluate("location.href") and "pz_rec" not in tab.page.evaluate("location.href")
    assert "utm_source=personalize" in tab.page.evaluate("location.href"), "the shop's own parameters stay"
    visitor = tab.visitor()
    clicked = wait_for(lambda: stored(visitor=visitor, type="rec_clicked"), message="the email's click")
    assert (clicked[0]["rec_id"], clicked[0]["slot"], clicked[0]["product_id"]) == ("r_mail42", "email", "s2")
    def merged():  # the proof is checked, and the merge made, right after the identify is stored
        with reco_app.app_context():
            return lookup(reco_site["id"], VISITOR, [visitor]).get(visitor) == ann

    wait_for(merged, message="the token merging this browser into the person")
    tab.page.evaluate("personalize('track', 'product_added', {product_id: 's2'})")
    tab.flush()
    added = wait_for(lambda: stored(visitor=visitor, type="product_added"), message="the add to cart")
    assert added[0]["rec_id"] == "r_mail42", "a later add to cart is credited to the email's list"
    urls = [e["url"] or "" for e in stored(visitor=visitor)]
    assert urls and not any("pz_token" in u or token in u for u in urls)
    assert not tab.errors
