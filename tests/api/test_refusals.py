"""The widget's endpoints say why they refuse, to the page that asked (CORS on error answers only),
and count refusals for the site's admin page; items carry a currency."""

from __future__ import annotations

import pytest

from personalize.refusals import KEEP, recent_refusals, refusals

OTHER = "https://other.example"


def get_recs(client, key, origin=None, **params):
    headers = {"Origin": origin} if origin else {}
    return client.get("/api/v1/recommendations", query_string={"key": key, "visitor": "v1", **params}, headers=headers)


def post_events(client, key, events, origin=None):
    headers = {"Origin": origin} if origin else {}
    return client.post("/api/v1/events", json={"key": key, "events": events}, headers=headers)


@pytest.mark.parametrize("key, status, code", [("pk_nobody_has_this_key", 401, "invalid_key"), (None, 403, "origin_not_allowed")])
def test_an_error_answer_is_readable_by_the_page_that_asked(client, trained, key, status, code):
    r = get_recs(client, key or trained.public_key, origin=OTHER)
    assert r.status_code == status and r.json["error"]["code"] == code
    assert r.headers["Access-Control-Allow-Origin"] == OTHER and r.headers["Vary"] == "Origin"
    e = post_events(client, key or trained.public_key, [{"id": "e1", "type": "page_viewed", "visitor": "v1"}], origin=OTHER)
    assert e.status_code == status and e.headers["Access-Control-Allow-Origin"] == OTHER


def test_data_is_still_readable_only_by_allowed_origins(client, trained):
    ok = get_recs(client, trained.public_key, origin="https://shop.example")
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    refused = get_recs(client, trained.public_key, origin=OTHER)
    assert refused.status_code == 403 and "items" not in refused.json and "rec_id" not in refused.json
    accepted = post_events(client, trained.public_key, [{"id": "ok-1", "type": "page_viewed", "visitor": "v1"}], origin="https://shop.example")
    assert accepted.status_code == 202 and accepted.headers["Access-Control-Allow-Origin"] == "https://shop.example"


def test_refusals_are_counted_per_site_origin_and_reason(app, client, trained):
    from personalize.sites import create_site

    other_site, _secret = create_site("Other shop", ["https://other-shop.example"])
    for _ in range(3):
        get_recs(client, trained.public_key, origin=OTHER)
    post_events(client, trained.public_key, [{"id": "x", "type": "product_viewed", "visitor": "v1"}], origin="https://shop.example")  # no product_id
    get_recs(client, "pk_nobody_has_this_key", origin=OTHER)  # no site to tell
    refusals(app).flush()
    rows = recent_refusals(trained.id)
    by_reason = {r["reason"]: r for r in rows}
    assert by_reason["origin_not_allowed"]["count"] == 3 and by_reason["origin_not_allowed"]["origin"] == OTHER
    assert by_reason["origin_not_allowed"]["meaning"].startswith("origin not allowed")
    invalid = next(r for r in rows if r["reason"] != "origin_not_allowed")
    assert invalid["origin"] == "https://shop.example" and "events[0].product_id" in invalid["message"]
    assert recent_refusals(other_site.id) == []
    # more later: added to the same row
    get_recs(client, trained.public_key, origin=OTHER)
    refusals(app).flush()
    assert {r["reason"]: r["count"] for r in recent_refusals(trained.id)}["origin_not_allowed"] == 4


def test_the_record_is_bounded_per_site(app, client, trained):
    for n in range(KEEP + 15):
        get_recs(client, trained.public_key, origin=f"https://fake-{n}.example")
    refusals(app).flush()
    rows = recent_refusals(trained.id, limit=1000)
    assert len(rows) == KEEP


def test_the_admin_live_check_lists_refusals(app, client, trained):
    from personalize.admin.users import create_admin_user

    get_recs(client, trained.public_key, origin=OTHER)
    refusals(app).flush()
    create_admin_user("owner@shop.example", "correct horse battery", "owner")
    page = client.get("/admin/login")
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    client.post("/admin/login", data={"email": "owner@shop.example", "password": "correct horse battery", "csrf_token": token})
    live = client.get(f"/admin/sites/{trained.id}/live").json
    assert [(r["origin"], r["count"], r["reason"]) for r in live["refused"]] == [(OTHER, 1, "origin_not_allowed")]
    html = client.get(f"/admin/sites/{trained.id}").get_data(as_text=True)
    assert f"from <code>{OTHER}</code> refused: origin not allowed" in html


def test_items_carry_their_own_currency_or_the_sites(client, ctx, trained):
    from personalize.catalog import upsert_products
    from personalize.catalog.currency import set_site_currency
    from personalize.records import ProductRecord
    from personalize.sites import get_site

    upsert_products(trained.id, [ProductRecord("run-shoe", "Trail running shoe", "/p/run-shoe", "", 120.0, "", "running"),
                                 ProductRecord("run-sock", "Running socks", "/p/run-sock", "", 12.0, "USD", "running")])
    body = get_recs(client, trained.public_key, limit=8).json
    by_id = {i["id"]: i["currency"] for i in body["items"]}
    assert by_id.get("run-shoe") == "" and by_id.get("run-sock") == "USD", "no currency is made up"
    set_site_currency(get_site(trained.id), "gbp")
    body = get_recs(client, trained.public_key, limit=8).json
    by_id = {i["id"]: i["currency"] for i in body["items"]}
    assert by_id["run-shoe"] == "GBP" and by_id["run-sock"] == "USD" and by_id["run-gel"] == "EUR"
