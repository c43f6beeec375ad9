"""Purchase propensity as profile data: computed with the other scores, stored on each profile,
matched by segment rules (the same in Python and SQL), in the API's profile and the change feed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from personalize.catalog import upsert_products
from personalize.db import db
from personalize.models import Profile
from personalize.profiles import import_orders
from personalize.profiles.merge import resolve_contact
from personalize.segments import synthetic
from personalize.segments.bulk import matching, rebuild_segment
from personalize.segments.live import RuleSet, evaluate_profile, load_facts
from personalize.segments.models import ProfileScore, SegmentChange
from personalize.segments.rules import evaluate, validate_rule
from personalize.segments.scores import compute_scores
from personalize.segments.store import CompiledSegment, create_segment, get_segment
from personalize.sites import create_site
from personalize.validation import InvalidInput

NOW = datetime(2024, 6, 1)


def shop_site(name: str, categorised: bool = True, seed: int = 2) -> tuple[int, str]:
    site, secret = create_site(name)
    products, orders = synthetic.records(synthetic.generate(n_customers=250, days=400, seed=seed), NOW, categorised)
    upsert_products(site.id, products)
    import_orders(site.id, orders)
    return site.id, secret


@pytest.fixture
def shop_and_key(ctx):
    site_id, secret = shop_site("Propensity shop")
    summary = compute_scores(site_id, NOW)
    return site_id, summary, secret


@pytest.fixture
def shop(shop_and_key):
    return shop_and_key[:2]


def stored(site_id: int) -> dict[int, ProfileScore]:
    db.session.expire_all()
    return {s.profile_id: s for s in db.session.scalars(select(ProfileScore).where(ProfileScore.site_id == site_id))}


def test_every_customer_gets_a_propensity_and_likely_categories(shop):
    site_id, summary = shop
    scores = stored(site_id)
    assert len(scores) == 250
    assert all(0.0 <= s.order_propensity <= 1.0 for s in scores.values())
    categories = {f"Category {chr(65 + i)}" for i in range(8)}
    for s in scores.values():
        likely = s.category_propensity
        assert 1 <= len(likely) <= 3 and set(likely) <= categories
        assert list(likely.values()) == sorted(likely.values(), reverse=True), "likeliest first"
        assert all(0.0 <= p <= 1.0 for p in likely.values())
    # the run says which model made them, from how much, and how long it took
    assert summary["order_propensity"]["model"] == "gradient boosting" and summary["order_propensity"]["seconds"] >= 0
    assert summary["category_propensity"]["model"] == "gradient boosting" and summary["category_propensity"]["categories"] == 8
    # recent, frequent buyers are likelier to order than customers silent for a long time
    recent = [s.order_propensity for s in scores.values() if s.recency_days < 20 and s.orders >= 5]
    silent = [s.order_propensity for s in scores.values() if s.recency_days > 200]
    assert recent and silent and sum(recent) / len(recent) > 2 * sum(silent) / len(silent)


def test_a_shop_without_categories_gets_none(ctx):
    site_id, _secret = shop_site("No categories", categorised=False)
    summary = compute_scores(site_id, NOW)
    scores = stored(site_id)
    assert scores and all(s.category_propensity is None for s in scores.values())
    assert all(s.order_propensity is not None for s in scores.values())
    assert summary["category_propensity"]["model"] == "none" and summary["category_propensity"]["reason"] == "no categories"


def test_the_api_profile_carries_the_propensities(shop_and_key, client):
    site_id, _summary, secret = shop_and_key
    score = next(s for s in stored(site_id).values() if len(s.category_propensity) == 3)
    r = client.get(f"/api/v1/profiles/{score.profile_id}", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    got = r.json["scores"]
    assert got["order_propensity"] == score.order_propensity and 0 <= got["order_propensity"] <= 1
    assert got["category_propensity"] == score.category_propensity
    assert list(got["category_propensity"]) == list(score.category_propensity), "likeliest first"
    described = client.get("/api/v1/openapi.json").json["components"]["schemas"]["Profile"]["properties"]["scores"]["properties"]
    assert {"order_propensity", "category_propensity"} <= set(described)


def test_a_rule_on_order_propensity_selects_the_right_profiles(shop):
    site_id, _summary = shop
    scores = stored(site_id)
    expected = {pid for pid, s in scores.items() if s.order_propensity >= 0.4}
    assert 10 < len(expected) < len(scores) - 10
    create_segment(site_id, {"key": "likely-buyers", "rule": {"field": "scores.order_propensity", "op": "gte", "value": 0.4}})
    assert rebuild_segment(site_id, "likely-buyers", NOW)["members"] == len(expected)
    members = set(db.session.scalars(matching(site_id, get_segment(site_id, "likely-buyers").rule, NOW)))
    assert members == expected
    # the profile-at-a-time evaluator agrees
    for pid in list(scores)[:40]:
        assert ("likely-buyers" in evaluate_profile(site_id, pid, NOW)) == (pid in expected)


def test_a_rule_on_a_category_propensity(shop):
    site_id, _summary = shop
    scores = stored(site_id)
    likely_a = {pid for pid, s in scores.items() if s.category_propensity.get("Category A", -1) >= 0.05}
    among_top = {pid for pid, s in scores.items() if "Category A" in s.category_propensity}
    assert likely_a and likely_a < among_top < set(scores)
    rule = {"field": "scores.category_propensity.Category A", "op": "gte", "value": 0.05}
    assert set(db.session.scalars(matching(site_id, validate_rule(rule), NOW))) == likely_a
    top = validate_rule({"field": "scores.category_propensity.Category A", "op": "exists"})
    assert set(db.session.scalars(matching(site_id, top, NOW))) == among_top
    # "not among the likeliest" is the exact complement
    assert set(db.session.scalars(matching(site_id, {"not": top}, NOW))) == set(
        db.session.scalars(select(Profile.id).where(Profile.site_id == site_id))) - among_top


def test_scores_runs_move_propensity_segments_and_the_change_feed_carries_it(shop):
    """Connectors push segment membership from the change feed: a propensity segment reaches them that way."""
    site_id, _summary = shop
    create_segment(site_id, {"key": "likely-buyers", "rule": {"field": "scores.order_propensity", "op": "gte", "value": 0.4}})
    rebuild_segment(site_id, "likely-buyers", NOW)
    seg = get_segment(site_id, "likely-buyers")
    entered = set(db.session.scalars(select(SegmentChange.profile_id).where(SegmentChange.segment_id == seg.id, SegmentChange.change == "entered")))
    assert entered == {pid for pid, s in stored(site_id).items() if s.order_propensity >= 0.4}
    # a month on, without new orders, the chances fall: the next scores run moves people out, and says so
    last = db.session.scalar(select(SegmentChange.id).order_by(SegmentChange.id.desc()).limit(1))
    compute_scores(site_id, NOW + timedelta(days=60))
    left = set(db.session.scalars(select(SegmentChange.profile_id).where(SegmentChange.id > last, SegmentChange.change == "left")))
    still = {pid for pid, s in stored(site_id).items() if s.order_propensity >= 0.4}
    assert left and left == entered - still


def test_category_rules_are_validated():
    assert validate_rule({"field": "scores.category_propensity.Home & \"Garden\"", "op": "between", "value": [0.1, 0.9]})
    assert validate_rule({"field": "scores.order_propensity", "op": "lt", "value": 0.2})
    for rule, field, message in (
        ({"field": "scores.order_propensity", "op": "gte", "value": "high"}, "rule.value", "gte compares numbers or dates"),
        ({"field": "scores.category_propensity.", "op": "gte", "value": 0.2}, "rule.field", "names a category"),
        ({"field": "scores.category_propensity." + "x" * 201, "op": "gte", "value": 0.2}, "rule.field", "names a category"),
        ({"field": "scores.category_propensity.Tea", "op": "contains", "value": "x"}, "rule.op", "needs a text field"),
        ({"field": "scores.category_propensity.Tea", "op": "eq", "value": "Tea"}, "rule.value", "is a number"),
    ):
        with pytest.raises(InvalidInput) as e:
            validate_rule(rule)
        assert e.value.field == field and message in e.value.message, (rule, e.value.field, e.value.message)


ODD = ["Tea", "Home & \"Garden\"", "a.b", "$.x", "Ümlaut 'quoted'", "[0]", "tea"]


def test_python_and_sql_agree_on_propensity_rules(ctx):
    """Random stored propensities (categories with quotes, dots, brackets) and random rules:
    the per-profile evaluator and the SQL one select the same profiles."""
    site, _secret = create_site("Odd categories")
    rng = random.Random(11)
    pids = []
    for i in range(40):
        pid = resolve_contact(site.id, email=f"p{i}@ex.com")
        pids.append(pid)
        if rng.random() < 0.85:
            likely = None if rng.random() < 0.15 else {c: round(rng.random() * 0.6, 4) for c in rng.sample(ODD, rng.randint(0, 3))}
            db.session.add(ProfileScore(
                profile_id=pid, site_id=site.id, orders=1, total_spent=1.0, avg_order=1.0, recency_days=1.0, tenure_days=1.0,
                r_score=1, f_score=1, m_score=1, rfm="111", rfm_segment="New customers", value=1.0, attrition=0.1,
                expected_orders=1.0, potential=1.0, cluster=0, cluster_name="All customers", computed_at=NOW,
                order_propensity=None if rng.random() < 0.1 else rng.choice([0.0, 0.25, 0.5, round(rng.random(), 4)]),
                category_propensity=likely,
            ))
    db.session.commit()
    ops = [("gt", 0.2), ("gte", 0.25), ("lt", 0.3), ("lte", 0.5), ("between", [0.1, 0.4]), ("eq", 0.25), ("neq", 0.25),
           ("in", [0.0, 0.5]), ("not_in", [0.5]), ("exists", None), ("missing", None)]

    def leaf() -> dict:
        name = "scores.order_propensity" if rng.random() < 0.4 else f"scores.category_propensity.{rng.choice(ODD)}"
        op, value = rng.choice(ops)
        return {"field": name, "op": op} if value is None else {"field": name, "op": op, "value": value}

    def tree(depth: int = 0) -> dict:
        if depth < 2 and rng.random() < 0.4:
            kind = rng.choice(["and", "or", "not"])
            return {"not": tree(depth + 1)} if kind == "not" else {kind: [tree(depth + 1) for _ in range(rng.randint(1, 3))]}
        return leaf()

    rules = [validate_rule(tree()) for _ in range(150)]
    every = RuleSet.of((), [CompiledSegment(i, f"r{i}", r) for i, r in enumerate(rules)])
    facts = {p: load_facts(site.id, p, NOW, every) for p in pids}
    for rule in rules:
        in_sql = set(db.session.scalars(matching(site.id, rule, NOW)))
        in_python = {p for p in pids if evaluate(rule, facts[p], NOW)}
        assert in_sql == in_python, rule
