"""The site page: the currency prices are shown in, and what the catalogue lacks for the widget."""

from __future__ import annotations

from personalize.records import ProductRecord

from .conftest import PASSWORD, make_user, post, sign_in


def test_the_page_suggests_the_currency_of_the_orders_and_an_editor_sets_it(as_owner, site):
    from personalize.catalog.currency import site_currency
    from personalize.sites import get_site

    page = as_owner.get(f"/admin/sites/{site.id}").get_data(as_text=True)
    assert 'id="site-currency-missing"' in page and "Your orders and products suggest <strong>EUR</strong>" in page
    r = post(as_owner, f"/admin/sites/{site.id}/currency", {"currency": "gbp"}, follow_redirects=True)
    assert "Prices without a currency of their own are now shown in GBP." in r.get_data(as_text=True)
    assert site_currency(get_site(site.id)) == "GBP"
    page = as_owner.get(f"/admin/sites/{site.id}").get_data(as_text=True)
    assert '<strong id="site-currency">GBP</strong>' in page and "set on the site page" in page


def test_a_wrong_code_is_refused_by_name(as_owner, site):
    from personalize.catalog.currency import site_currency
    from personalize.sites import get_site

    r = post(as_owner, f"/admin/sites/{site.id}/currency", {"currency": "pounds"}, follow_redirects=True)
    assert "three-letter ISO 4217 code" in r.get_data(as_text=True)
    assert site_currency(get_site(site.id)) == ""


def test_a_viewer_sees_the_currency_but_cannot_change_it(client, site):
    make_user("viewer@shop.example", "viewer", [site.id])
    sign_in(client, "viewer@shop.example", PASSWORD)
    page = client.get(f"/admin/sites/{site.id}").get_data(as_text=True)
    assert 'id="currency"' in page and 'id="currency-code"' not in page
    assert post(client, f"/admin/sites/{site.id}/currency", {"currency": "USD"}).status_code == 403


def test_products_without_links_or_images_are_counted_with_what_to_do(as_owner, site):
    from personalize.catalog import upsert_products

    upsert_products(site.id, [ProductRecord("imported-1", "From an order"), ProductRecord("imported-2", "Also", url="/p/2")])
    page = as_owner.get(f"/admin/sites/{site.id}").get_data(as_text=True)
    assert "<strong>1 of 10 products have no link</strong> and 9 no image" in page
    assert "personalize import-products products.csv" in page and "id,url,image" in page and "Connections" in page
