"""Recommendation settings per slot, with a preview before saving; the rules in serving."""

from __future__ import annotations

from personalize.builtins.rules import merge_rules
from personalize.db import db
from personalize.profiles import ingest_events
from personalize.recommend.service import recommend_for
from personalize.sites import get_site

from .conftest import post


def ids(lst):
    return [i["id"] for i in lst.items]


def test_preview_shows_the_list_with_reasons_and_saves_nothing(as_owner, trained):
    r = post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"action": "preview", "profile": "runner-3", "pin": "tea-pot"})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and 'data-product="tea-pot"' in page and "Recommended by the shop" in page
    assert page.index('data-product="tea-pot"') < page.index('data-product="run-')
    assert "strategy <strong>personal</strong>" in page and "You bought this before" in page
    assert "Recently: bought" in page, "the profile's history is shown beside its list"
    assert not (get_site(trained.id).settings or {}).get("rules"), "a preview changes nothing"
    assert "tea-pot" not in ids(recommend_for(get_site(trained.id), "runner-3", "home", 4))


def test_save_site_wide_and_per_slot_rules(as_owner, trained):
    form = {"action": "save", "exclude": "run-sock", "boost": "run-cap 3", "bought_show": "run-shoe -> tea-cup",
            "weight_popular": "0.5", "weight_personal": "1"}
    assert post(as_owner, f"/admin/sites/{trained.id}/recommendations", form).status_code == 302
    post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"action": "save", "slot": "product", "pin": "tea-pot"})
    rules = get_site(trained.id).settings["rules"]
    assert rules["exclude"] == ["run-sock"] and rules["boost"] == {"run-cap": 3.0}
    assert rules["bought_show"] == {"run-shoe": ["tea-cup"]} and rules["weights"] == {"popular": 0.5}
    assert rules["slots"] == {"product": {"pin": ["tea-pot"]}}
    page = as_owner.get(f"/admin/sites/{trained.id}/recommendations?slot=product").get_data(as_text=True)
    assert ">tea-pot</textarea>" in page
    assert merge_rules(rules, "product")["pin"] == ["tea-pot"] and "pin" not in merge_rules(rules, "home")


def test_rules_apply_when_serving(trained):
    s = get_site(trained.id)
    s.settings = {"rules": {"bought_show": {"run-shoe": ["tea-cup"]}, "slots": {"product": {"exclude": ["run-gel"]}}}}
    db.session.commit()
    buyer = ids(recommend_for(s, "runner-0", "home", 4))  # runner-0 bought run-shoe
    assert buyer[0] == "tea-cup"
    assert recommend_for(s, "runner-0", "home", 4).items[0]["reason"] == "Goes well with Trail running shoe"
    assert all(i["reason"] != "Goes well with Trail running shoe" for i in recommend_for(s, "tea-1", "home", 8).items), "tea-1 never bought the shoe"
    assert "run-gel" not in ids(recommend_for(s, "runner-5", "product", 8)), "the product slot's own exclusion"
    assert "run-gel" in ids(recommend_for(s, "runner-5", "home", 8)), "other slots keep it"


def test_a_zero_weight_drops_a_strategy(trained):
    s = get_site(trained.id)
    before = recommend_for(s, "nobody-yet", "home", 4)
    assert before.items and {i["reason"] for i in before.items} == {"Popular right now"}
    s.settings = {"rules": {"weights": {"popular": 0}}}
    db.session.commit()
    assert recommend_for(s, "nobody-yet", "home", 4).items == []


def test_bad_input_is_named_and_nothing_is_saved(as_owner, trained):
    for form, message in (
        ({"boost": "run-cap lots"}, "is not a number"),
        ({"boost": "run-cap 500"}, "between"),
        ({"exclude": "no-such-product"}, "Unknown product id(s): no-such-product"),
        ({"bought_show": "run-shoe tea-cup"}, "A -&gt; B, C"),
        ({"weight_personal": "-1"}, "Weight of personal: -1 is not between 0 and 10"),
    ):
        r = post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"action": "save", **form})
        assert r.status_code == 400 and message in r.get_data(as_text=True), form
    assert not (get_site(trained.id).settings or {}).get("rules")


def test_preview_finds_profiles_by_email_and_says_when_unknown(as_owner, trained):
    s = get_site(trained.id)
    ingest_events(s, [{"id": "idf", "type": "identify", "visitor": "runner-2", "email": "runner@shop.example"}])
    page = post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"profile": "runner@shop.example"}).get_data(as_text=True)
    assert "visitor <code>runner-2</code>" in page
    page = post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"profile": "ghost"}).get_data(as_text=True)
    assert "No profile found" in page


def test_preview_warns_about_the_holdout(as_owner, trained):
    from personalize.insights import in_holdout, set_holdout_share

    s = get_site(trained.id)
    set_holdout_share(s, 0.5)
    held = next(f"runner-{i}" for i in range(12) if in_holdout(s, f"runner-{i}"))
    page = post(as_owner, f"/admin/sites/{trained.id}/recommendations", {"profile": held}).get_data(as_text=True)
    assert "in the holdout group" in page and "strategy <strong>personal</strong>" in page


def test_model_panel_says_what_is_served_and_how_each_strategy_did(as_owner, trained, tmp_path):
    from personalize.models import ModelVersion
    from personalize.recommend.engine import Recommender
    from personalize.recommend.synthetic import generate

    # the test shop is too small to check anything: the panel says so
    page = as_owner.get(f"/admin/sites/{trained.id}/recommendations").get_data(as_text=True)
    assert 'id="model"' in page and "Serves the fixed blend (not checked:" in page
    # a shop with enough history: the self-check's table, the served strategy marked in each view
    shop = generate(n_items=500, n_users=700, n_interactions=50_000, seed=4)
    model = Recommender.fit(shop.log, shop.items)
    path = tmp_path / "checked.model"
    model.save(path)
    db.session.add(ModelVersion(site_id=trained.id, path=str(path), n_items=500, n_users=700, n_interactions=len(shop.log), fit_seconds=3.0, active=True))
    db.session.commit()
    page = as_owner.get(f"/admin/sites/{trained.id}/recommendations").get_data(as_text=True)
    assert f"Checked on the last {model.check['window_days']:g} days" in page
    for name in ("best sellers", "buy again", "item-kNN"):
        assert f"<td>{name}</td>" in page
    assert page.count("· served") == 2
    best_all = max(model.check["recall"]["all"].values())
    assert f"{best_all * 100:.1f} % <strong>· served</strong>" in page
