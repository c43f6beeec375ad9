"""The rules-by-attribute page: save, refuse with the field named, turn off, delete; the product search."""

from __future__ import annotations

import html

from personalize.db import db
from personalize.recommend.service import recommend_for
from personalize.sites import get_site

from .conftest import make_user, post, sign_in

SOCKS_FOR_RUNNERS = {
    "name": "Tea for runners", "action": "show", "count": "2", "items_field": "category", "items_op": "is", "items_value": "tea",
    "when_did": "bought", "when_field": "category", "when_op": "is", "when_value": "running", "reason": "",
}


def page_of(site_id):
    return f"/admin/sites/{site_id}/recommendations/rules"


def test_save_a_rule_and_it_serves(as_owner, trained):
    r = post(as_owner, page_of(trained.id), {**SOCKS_FOR_RUNNERS, "do": "save"})
    assert r.status_code == 302, r.get_data(as_text=True)
    rules = get_site(trained.id).settings["rules"]["attribute_rules"]
    assert [(x["name"], x["action"], x["count"], x["items"]["value"], x["when"]["did"]) for x in rules] == [
        ("Tea for runners", "show", 2, ["tea"], "bought")]
    page = as_owner.get(page_of(trained.id)).get_data(as_text=True)
    assert "Who bought category is running: show 2 of category is tea" in page and "matches 4 products" in page
    items = recommend_for(get_site(trained.id), "runner-0", "home", 4).items  # runner-0 bought running things
    assert [i["id"][:3] for i in items[:2]] == ["tea", "tea"] and items[0]["reason"].startswith("Goes well with")
    # the category choices come from the catalogue
    assert '<datalist id="values-category"><option value="running"><option value="tea"></datalist>' in page


def test_errors_name_the_field_and_save_nothing(as_owner, trained):
    for change, words, input_id in (
        ({"name": ""}, "Name: is required", "rule-name"),
        ({"items_value": ""}, "Products: value: name at least one value", "items-value"),
        ({"action": "boost", "factor": "500"}, "Factor: 500 is not between 0.01 and 100", "rule-factor"),
        ({"starts": "2026-12-02T00:00", "ends": "2026-12-01T00:00"}, "Ends: must be after the start", "rule-ends"),
        ({"items_field": "price", "items_op": "between", "items_value": "cheap to dear"}, "Products: value: 'cheap' is not a number", "items-value"),
        ({"when_field": "id", "when_ids": "run-shoe\nno-such-thing"}, "Condition: value: unknown product id(s): no-such-thing", "when-ids"),
    ):
        r = post(as_owner, page_of(trained.id), {**SOCKS_FOR_RUNNERS, **change, "do": "save"})
        text = html.unescape(r.get_data(as_text=True))
        assert r.status_code == 400 and words in text, (change, text[text.find('role="alert"'):][:200])
        assert f'id="{input_id}"' in text.split('aria-invalid="true"')[0].rsplit("<", 1)[-1], change  # that input is marked
    assert not (get_site(trained.id).settings or {}).get("rules")


def test_turn_off_delete_and_the_id_rules_form_keeps_them(as_owner, trained):
    post(as_owner, page_of(trained.id), {**SOCKS_FOR_RUNNERS, "do": "save"})
    rule_id = get_site(trained.id).settings["rules"]["attribute_rules"][0]["id"]
    post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"action": "save", "pin": "tea-pot"})
    rules = get_site(trained.id).settings["rules"]
    assert rules["pin"] == ["tea-pot"] and len(rules["attribute_rules"]) == 1
    post(as_owner, page_of(trained.id), {"do": "disable", "rule_id": rule_id})
    db.session.expire_all()
    assert get_site(trained.id).settings["rules"]["attribute_rules"][0]["enabled"] is False
    items = recommend_for(get_site(trained.id), "runner-0", "home", 4).items
    assert not any(i["reason"].startswith("Goes well with") for i in items[1:3])
    post(as_owner, page_of(trained.id), {"do": "delete", "rule_id": rule_id})
    db.session.expire_all()
    assert "attribute_rules" not in get_site(trained.id).settings["rules"]


def test_product_search_for_the_picker(as_owner, trained):
    def search(**q):
        r = as_owner.get(f"/admin/sites/{trained.id}/products/search", query_string=q)
        assert r.status_code == 200
        return r.json["products"]

    found = search(q="tea")
    assert {p["id"] for p in found} == {"tea-pot", "tea-green", "tea-cup", "tea-timer"}
    assert found[-1]["id"] == "tea-timer" and found[-1]["in_stock"] is False  # out of stock last
    assert [p["id"] for p in search(q="run-sock")] == ["run-sock"]
    assert search(q="100%_") == []  # no wildcard from the search text
    shoe = search(ids="run-shoe,nope,tea-cup")
    assert [p["id"] for p in shoe] == ["run-shoe", "tea-cup"]
    assert shoe[0]["image"] == ""  # a path on the shop, not an address the admin can show


def test_a_viewer_sees_but_cannot_change(client, ctx, trained):
    make_user("viewer@shop.example", "viewer", [trained.id])
    sign_in(client, "viewer@shop.example")
    assert client.get(page_of(trained.id)).status_code == 200
    assert post(client, page_of(trained.id), {**SOCKS_FOR_RUNNERS, "do": "save"}).status_code == 403
    assert client.get(f"/admin/sites/{trained.id + 1}/products/search?q=tea").status_code == 404
