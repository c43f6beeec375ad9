"""Consent, Global Privacy Control and the local opt-out: nothing stored, nothing sent."""

from __future__ import annotations

import pytest

from .support import slot, wait_for

pytestmark = pytest.mark.browser

GPC_ON = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true, configurable: true});"


def settle(tab):
    """Let the widget send whatever it would send: as if the page were left."""
    tab.flush()


def test_consent_required_sends_and_stores_nothing_until_consent(reco_site, shop, tab, stored):
    tab.page.goto(shop.page("/consent", slot() + shop.snippet(consent="required", product_id="s2")))
    tab.rendered()  # recommendations still show, for an anonymous visitor
    tab.page.evaluate("personalize('view', {product_id: 's3'})")
    settle(tab)
    assert tab.sent("/api/v1/events") == []
    assert tab.storage() == {}

    tab.page.evaluate("personalize('consent', true)")
    visitor = wait_for(tab.visitor, message="a stored visitor id after consent")
    events = wait_for(lambda: stored(visitor=visitor), message="the events sent after consent")
    # The page and the product of the page are reported once consent is there; the earlier
    # explicit call made without consent is not.
    assert sorted((e["type"], e["product_id"]) for e in events) == [("page_viewed", None), ("product_viewed", "s2")]


def test_consent_withdrawn_forgets_the_visitor(reco_site, shop, tab):
    tab.page.goto(shop.page("/withdraw", slot() + shop.snippet()))
    tab.rendered()
    assert tab.visitor()
    tab.page.evaluate("personalize('consent', false)")
    assert tab.storage() == {}
    sent_before = len(tab.sent("/api/v1/events"))
    tab.page.evaluate("personalize('track', 'product_added', {product_id: 's1'})")
    settle(tab)
    assert len(tab.sent("/api/v1/events")) == sent_before


def test_global_privacy_control_sends_nothing(reco_site, shop, new_tab):
    tab = new_tab(GPC_ON)
    tab.page.goto(shop.page("/gpc", slot() + shop.snippet(product_id="s4")))
    shown = tab.rendered()[0]
    tab.page.evaluate("personalize('track', 'product_added', {product_id: 's4', quantity: 1})")
    tab.page.locator(f'[data-personalize-item="{shown["items"][0]}"]').click()
    tab.page.wait_for_load_state()
    settle(tab)
    assert tab.sent("/api/v1/events") == []
    assert tab.storage() == {}
    assert not tab.errors


def test_local_opt_out_sends_nothing_and_persists(reco_site, shop, tab):
    tab.page.goto(shop.page("/optout", slot() + shop.snippet()))
    tab.rendered()
    tab.page.evaluate("personalize('optout')")
    assert tab.storage() == {"pz_optout": "1"}
    sent_before = len(tab.sent("/api/v1/events"))

    tab.page.reload()
    tab.rendered()
    tab.page.evaluate("personalize('view', {product_id: 's6'})")
    settle(tab)
    assert len(tab.sent("/api/v1/events")) == sent_before
    assert tab.storage() == {"pz_optout": "1"}
