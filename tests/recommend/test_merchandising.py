"""Rules by attribute, as plain Python: validation naming the field, matching, and the order
in which hide, show, boost and bury act on a list."""

from __future__ import annotations

import pytest

from personalize.recommend.merchandising import (
    CatalogItem,
    RuleError,
    Visit,
    apply,
    compile_rules,
    describe,
    extra_candidates,
    validate_rule,
    validate_rules,
)
from personalize.records import Recommendation

NOW = 1_780_000_000.0  # 2026-05-28
CATALOG = [
    CatalogItem("shoe-1", "Trail shoe", "shoes", 120.0, {"brand": "Fell", "margin": "0.40"}),
    CatalogItem("shoe-2", "Road shoe", "Shoes", 90.0, {"brand": "Asfalt", "margin": 0.35}),
    CatalogItem("sock-1", "Merino socks", "socks", 15.0, {"brand": "Fell", "margin": 0.55}),
    CatalogItem("sock-2", "Cotton socks", "socks", 6.0, {"margin": 0.05}),
    CatalogItem("sock-3", "Old socks", "socks", 5.0, {}, in_stock=False),
    CatalogItem("cap-1", "Cap", "hats", 20.0, {"brand": "Fell", "margin": 0.10}),
    CatalogItem("gel-1", "Gel", "food", 2.5, {"margin": "n/a"}),
]


def rule(**kw) -> dict:
    return validate_rule({"name": "r", **kw})


def cat(*values) -> dict:
    return {"field": "category", "op": "is", "value": list(values)}


def items(*pairs) -> list[Recommendation]:
    return [Recommendation(pid, score, "because", "personal") for pid, score in pairs]


def ids(xs) -> list[str]:
    return [x.product_id for x in xs]


def visit(**kw) -> Visit:
    return Visit(**{"slot": "home", "now": NOW, **kw})


@pytest.mark.parametrize(("raw", "field"), [
    ({"name": "x", "action": "shout", "items": cat("a")}, "rule.action"),
    ({"action": "hide", "items": cat("a")}, "rule.name"),
    ({"name": "x", "action": "hide"}, "rule.items"),
    ({"name": "x", "action": "hide", "items": {"field": "colour", "op": "is", "value": ["red"]}}, "rule.items.field"),
    ({"name": "x", "action": "hide", "items": {"field": "price", "op": "is", "value": ["3"]}}, "rule.items.op"),
    ({"name": "x", "action": "hide", "items": {"field": "price", "op": "between", "value": [30, 10]}}, "rule.items.value"),
    ({"name": "x", "action": "hide", "items": {"field": "price", "op": "below", "value": "cheap"}}, "rule.items.value"),
    ({"name": "x", "action": "hide", "items": cat()}, "rule.items.value"),
    ({"name": "x", "action": "boost", "items": cat("a")}, "rule.factor"),
    ({"name": "x", "action": "boost", "items": cat("a"), "factor": 1000}, "rule.factor"),
    ({"name": "x", "action": "show", "items": cat("a"), "count": 2.5}, "rule.count"),
    ({"name": "x", "action": "hide", "items": cat("a"), "when": {"did": "liked", "items": cat("b")}}, "rule.when.did"),
    ({"name": "x", "action": "hide", "items": cat("a"), "starts": "next friday"}, "rule.starts"),
    ({"name": "x", "action": "hide", "items": cat("a"), "starts": "2026-12-02", "ends": "2026-12-01"}, "rule.ends"),
    ({"name": "x", "action": "hide", "items": cat("a"), "slots": ["home page!"]}, "rule.slots"),
])
def test_validation_names_the_field(raw, field):
    with pytest.raises(RuleError) as err:
        validate_rule(raw)
    assert err.value.field == field


def test_validation_normalizes_and_lists_name_the_rule():
    r = rule(action="bury", items={"field": "price", "op": "between", "value": "10 - 20"}, starts="2026-11-27", ends="2026-12-01T09:00+01:00")
    assert r["items"]["value"] == [10.0, 20.0]
    assert r["starts"] == "2026-11-27T00:00:00Z" and r["ends"] == "2026-12-01T08:00:00Z"
    assert r["id"]
    with pytest.raises(RuleError) as err:
        validate_rules([{"name": "a", "action": "hide", "items": cat("x"), "id": "a"}, {"name": "b", "action": "hide", "items": cat("x"), "id": "a"}])
    assert err.value.field == "rules[1].id"
    with pytest.raises(RuleError) as err:
        validate_rules([rule(action="hide", items=cat("x")), {"name": "b", "action": "hide", "items": {"field": "price"}}])
    assert err.value.field == "rules[1].items.op"


def test_category_and_attributes_match_without_case_and_numbers_from_text():
    compiled = compile_rules([
        rule(id="shoes", action="hide", items=cat("SHOES")),
        rule(id="fell", action="hide", items={"field": "attributes.brand", "op": "is", "value": ["fell"]}),
        rule(id="low", action="hide", items={"field": "attributes.margin", "op": "below", "value": 0.2}),
        rule(id="band", action="hide", items={"field": "price", "op": "between", "value": [10, 20]}),
        rule(id="not", action="hide", items={"field": "category", "op": "is_not", "value": ["socks", "shoes"]}),
    ], CATALOG)
    targets = {r.id: r.targets for r in compiled.rules}
    assert targets["shoes"] == {"shoe-1", "shoe-2"}
    assert targets["fell"] == {"shoe-1", "sock-1", "cap-1"}
    assert targets["low"] == {"sock-2", "cap-1"}  # "n/a" and a missing margin are not numbers: no match
    assert targets["band"] == {"sock-1", "cap-1"}
    assert targets["not"] == {"cap-1", "gel-1"}


def test_bought_shoes_shows_socks_right_after_pins_with_a_reason():
    compiled = compile_rules([rule(id="socks", action="show", count=2, items=cat("socks"), when={"did": "bought", "items": cat("shoes")})],
                             CATALOG, popularity=["sock-2", "sock-3", "sock-1"])
    who_bought = visit(history=[("gel-1", "view"), ("shoe-2", "purchase")])
    extra = extra_candidates(compiled, who_bought)
    assert ids(extra) == ["sock-2", "sock-1"]  # by popularity; the out-of-stock pair is never added
    lst = items(("pinned", 1e9), ("cap-1", 5.0), ("gel-1", 3.0), *[(e.product_id, e.score) for e in extra])
    changes = apply(compiled, lst, who_bought)
    assert ids(lst) == ["pinned", "sock-2", "sock-1", "cap-1", "gel-1"]
    assert lst[1].reason == "Goes well with Road shoe"
    assert changes == [("sock-2", "socks"), ("sock-1", "socks")]
    # a visitor who only looked at shoes, or bought nothing, is not shown socks
    for history in ([("shoe-2", "view")], []):
        lst = items(("cap-1", 5.0), ("sock-1", 1.0))
        assert apply(compiled, lst, visit(history=history)) == []
        assert ids(lst) == ["cap-1", "sock-1"]
        assert extra_candidates(compiled, visit(history=history)) == []


def test_viewed_condition_counts_the_product_on_the_page():
    compiled = compile_rules([rule(action="show", count=1, items=cat("socks"), when={"did": "viewed", "items": cat("shoes")}, reason="Socks to go")], CATALOG)
    lst = items(("cap-1", 5.0), ("sock-1", 1.0))
    apply(compiled, lst, visit(product="shoe-1"))
    assert ids(lst) == ["sock-1", "cap-1"] and lst[0].reason == "Socks to go"


def test_order_hide_then_show_then_boost_then_bury():
    compiled = compile_rules([
        rule(id="bury-low", action="bury", items={"field": "attributes.margin", "op": "below", "value": 0.2}),
        rule(id="boost-fell", action="boost", factor=3, items={"field": "attributes.brand", "op": "is", "value": ["Fell"]}),
        rule(id="hide-food", action="hide", items=cat("food")),
        rule(id="show-shoes", action="show", count=1, items=cat("shoes")),
    ], CATALOG)
    lst = items(("gel-1", 9.0), ("sock-2", 8.0), ("shoe-2", 4.0), ("shoe-1", 3.0), ("cap-1", 2.0), ("sock-1", 1.0))
    changes = apply(compiled, lst, visit())
    # gel hidden; the better-scored shoe lifted; Fell items ×3 (sock-1 1→3, cap-1 2→6 but low margin: buried)
    assert ids(lst) == ["shoe-2", "shoe-1", "sock-1", "sock-2", "cap-1"]
    assert [c for c in changes if c[1] == "hide-food"] == [("gel-1", "hide-food")]
    assert ("shoe-1", "boost-fell") in changes and ("shoe-2", "boost-fell") not in changes  # lifted ones are not boosted again
    assert lst[1].reason == "Picked by the shop"  # a boost above 1 says why the item is there
    assert lst[-2].product_id == "sock-2" and lst[-2].reason == "because"  # bury keeps the strategy's reason


def test_pinned_items_stay_put_but_hide_removes_them():
    compiled = compile_rules([rule(action="bury", items=cat("hats")), rule(action="boost", factor=0.01, items=cat("hats"))], CATALOG)
    lst = items(("cap-1", 1e9), ("gel-1", 1.0))
    apply(compiled, lst, visit())
    assert ids(lst) == ["cap-1", "gel-1"] and lst[0].score == 1e9
    compiled = compile_rules([rule(action="hide", items={"field": "id", "op": "is", "value": ["cap-1"]})], CATALOG)
    apply(compiled, lst, visit())
    assert ids(lst) == ["gel-1"]


def test_date_window_and_slots():
    sale = compile_rules([rule(action="show", count=1, items=cat("hats"), starts="2026-05-01", ends="2026-06-01", slots=["home"])], CATALOG)
    before, during, after = 1_777_000_000.0, NOW, 1_781_000_000.0
    for now, slot, lifted in ((before, "home", False), (during, "home", True), (after, "home", False), (during, "product", False)):
        lst = items(("gel-1", 5.0), ("cap-1", 1.0))
        apply(sale, lst, visit(now=now, slot=slot))
        assert (lst[0].product_id == "cap-1") is lifted, (now, slot)


def test_disabled_rules_do_nothing_and_describe_reads_well():
    r = rule(action="hide", items=cat("hats"), enabled=False)
    lst = items(("cap-1", 1.0))
    apply(compile_rules([r], CATALOG), lst, visit())
    assert ids(lst) == ["cap-1"]
    shoes = rule(action="show", count=2, items=cat("socks"), when={"did": "bought", "items": cat("shoes")})
    assert describe(shoes) == "Who bought category is shoes: show 2 of category is socks"
    assert describe(rule(action="bury", items={"field": "price", "op": "between", "value": [1, 5]})) == "Bury price between 1 and 5"
