"""GET /api/v1/recommendations obeys the shop's rules by attribute, on every slot and strategy."""

from __future__ import annotations

import pytest

from personalize.db import db
from personalize.sites import get_site


def recs(client, site, visitor="new-visitor", **params):
    query = {"key": site.public_key, "visitor": visitor, "limit": 4, **params}
    r = client.get("/api/v1/recommendations", query_string=query)
    assert r.status_code == 200, r.json
    return r.json


def view(client, site, visitor, product):
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": f"{visitor}-{product}", "type": "product_viewed", "visitor": visitor, "product_id": product}]})
    assert r.status_code == 202


def set_rules(site_id: int, rules: list[dict], **by_id) -> None:
    from personalize.recommend.merchandising import validate_rules

    s = get_site(site_id)
    s.settings = {**(s.settings or {}), "rules": {**by_id, "attribute_rules": validate_rules(rules)}}
    db.session.commit()


def bought(client, site, visitor: str, *products: str) -> None:
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [{
        "id": f"{visitor}-order", "type": "order_completed", "visitor": visitor, "order_id": f"o-{visitor}-x",
        "items": [{"product_id": p, "quantity": 1, "price": 10.0} for p in products]}]})
    assert r.status_code == 202


def ids(body) -> list[str]:
    return [i["id"] for i in body["items"]]


TEA = {"field": "category", "op": "is", "value": ["tea"]}
RUNNING = {"field": "category", "op": "is", "value": ["running"]}


@pytest.mark.parametrize("trained_or_not", ["trained", "site"])
def test_bought_running_shows_tea_right_away_with_a_reason(client, ctx, request, trained_or_not):
    shop = request.getfixturevalue(trained_or_not)  # with a model (personal list) and without (best sellers)
    set_rules(shop.id, [{"id": "tea", "name": "Tea for runners", "action": "show", "count": 2, "items": TEA,
                         "when": {"did": "bought", "items": RUNNING}}], pin=["run-gel"])
    bought(client, shop, "fresh", "run-shoe")
    body = recs(client, shop, "fresh", limit=5)
    assert ids(body)[0] == "run-gel"  # the pin still leads
    assert [i["id"].split("-")[0] for i in body["items"][1:3]] == ["tea", "tea"]
    assert {i["reason"] for i in body["items"][1:3]} == {"Goes well with Trail running shoe"}
    assert "tea-timer" not in ids(body)  # out of stock: never shown, rule or not
    # someone who bought nothing does not get the runners' tea
    other = recs(client, shop, "nobody", limit=5)
    assert "Goes well with Trail running shoe" not in {i["reason"] for i in other["items"]}


def test_hide_bury_and_boost_by_attribute_and_price_band(client, ctx, trained):
    from personalize.catalog import get_product

    for pid, margin in (("run-sock", 0.05), ("tea-cup", 0.5), ("run-gel", 0.02)):
        get_product(trained.id, pid).attributes = {"margin": margin}
    db.session.commit()
    view(client, trained, "v", "run-cap")
    before = ids(recs(client, trained, "v", limit=8))
    assert "run-sock" in before and "tea-pot" in before
    set_rules(trained.id, [
        {"id": "low", "name": "Low margin last", "action": "bury", "items": {"field": "attributes.margin", "op": "below", "value": 0.1}},
        {"id": "dear", "name": "No 40 to 200", "action": "hide", "items": {"field": "price", "op": "between", "value": [40, 200]}},
        {"id": "cups", "name": "Cups up", "action": "boost", "factor": 50, "items": {"field": "id", "op": "is", "value": ["tea-cup"]},
         "reason": "Our pick"},
    ])
    for slot in ("home", "product", "cart"):
        body = recs(client, trained, "v", limit=8, slot=slot, **({"product": "tea-green"} if slot == "product" else {}))
        got = ids(body)
        assert "run-shoe" not in got and "tea-pot" not in got, slot  # 120 and 45: in the hidden price band
        assert set(got[-2:]) == {"run-sock", "run-gel"}, (slot, got)
        assert got[0] == "tea-cup" and body["items"][0]["reason"] == "Our pick", slot


def test_a_sale_applies_only_between_its_dates(client, ctx, trained):
    def top(rule_dates):
        set_rules(trained.id, [{"id": "sale", "name": "Tea sale", "action": "show", "count": 1, "reason": "On sale",
                                "items": {"field": "id", "op": "is", "value": ["tea-green"]}, **rule_dates}])
        return recs(client, trained, "runner-1", limit=4)["items"][0]

    during = top({"starts": "2020-01-01", "ends": "2999-01-01"})
    assert (during["id"], during["reason"]) == ("tea-green", "On sale")
    assert top({"starts": "2998-01-01"})["id"] != "tea-green"
    assert top({"starts": "2020-01-01", "ends": "2021-01-01"})["id"] != "tea-green"


def test_rules_follow_catalogue_changes_without_restart(client, ctx, trained):
    from personalize.catalog import get_product

    set_rules(trained.id, [{"id": "h", "name": "No hats", "action": "hide", "items": {"field": "category", "op": "is", "value": ["hats"]}}])
    view(client, trained, "c", "run-shoe")
    assert "run-cap" in ids(recs(client, trained, "c", limit=8))
    get_product(trained.id, "run-cap").category = "hats"
    db.session.commit()
    assert "run-cap" not in ids(recs(client, trained, "c", limit=8))


def test_slot_limited_rule_leaves_other_slots_alone(client, ctx, trained):
    set_rules(trained.id, [{"id": "h", "name": "No tea on product pages", "action": "hide", "items": TEA, "slots": ["product"]}])
    assert not [i for i in ids(recs(client, trained, "n", limit=8, slot="product", product="run-shoe")) if i.startswith("tea")]
    assert [i for i in ids(recs(client, trained, "n", limit=8)) if i.startswith("tea")]


def test_rules_api_for_the_shops_servers(client, ctx, trained):
    auth = {"Authorization": f"Bearer {trained.secret_key}"}
    assert client.get("/api/v1/rules", headers=auth).json == {"rules": []}
    rule = {"id": "hats", "name": "No hats", "action": "hide", "items": {"field": "category", "op": "is", "value": ["running"]}}
    r = client.put("/api/v1/rules", headers=auth, json={"rules": [rule]})
    assert r.status_code == 200 and r.json["rules"][0]["id"] == "hats"
    assert not [i for i in ids(recs(client, trained, "x", limit=8)) if i.startswith("run-")]
    for body, field in (
        ({"rules": [{**rule, "items": {"field": "category", "op": "below", "value": 3}}]}, "rules[0].items.op"),
        ({"rules": [rule, {**rule, "action": "boost"}]}, "rules[1].factor"),
        ({"rules": [{**rule, "items": {"field": "id", "op": "is", "value": ["nope"]}}]}, "rules[0].items.value"),
        ({"rules": "all"}, "rules"),
        ({}, "rules"),
    ):
        r = client.put("/api/v1/rules", headers=auth, json=body)
        assert r.status_code == 400 and r.json["error"]["field"] == field, (body, r.json)
    assert client.get("/api/v1/rules", headers=auth).json["rules"][0]["id"] == "hats"  # a refused change changes nothing
    assert client.get("/api/v1/rules", query_string={"key": trained.public_key}).status_code in (401, 403)
