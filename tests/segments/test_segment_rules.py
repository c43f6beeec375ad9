"""Rule segments: validation, Python and SQL agree, incremental and bulk membership, the API, the policy."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from personalize.db import db
from personalize.models import Order, Profile
from personalize.profiles import ingest_events, profile_for_visitor, set_attributes
from personalize.profiles.merge import resolve_contact
from personalize.segments.bulk import matching, rebuild_segment
from personalize.segments.live import evaluate_profile
from personalize.segments.rules import validate_rule
from personalize.segments.store import create_segment
from personalize.sites import get_site
from personalize.validation import InvalidInput

NOW = datetime(2024, 6, 1)


def test_invalid_rules_name_the_node():
    with pytest.raises(InvalidInput) as e:
        validate_rule({"and": [{"field": "orders.total", "op": "gt", "value": "lots"}]})
    assert e.value.field == "rule.and[0].value"
    with pytest.raises(InvalidInput) as e:
        validate_rule({"or": [{"behaviour": {"event": "flew"}}]})
    assert e.value.field == "rule.or[0].behaviour.event"
    with pytest.raises(InvalidInput):
        validate_rule({"field": "profile.created_at", "op": "contains", "value": "x"})


ATTR_VALUES = [None, 1, 2.5, 10, -3, "gold", "silver", "Gold", "2024-05-20", "2023-01-01T10:00:00Z", True, False, ["a", "b"], ["b", 1], []]


def random_rule(rng: random.Random, depth: int = 0) -> dict:
    if depth < 2 and rng.random() < 0.4:
        kind = rng.choice(["and", "or", "not"])
        if kind == "not":
            return {"not": random_rule(rng, depth + 1)}
        return {kind: [random_rule(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    pick = rng.random()
    if pick < 0.15:
        return {"behaviour": {"event": rng.choice(["product_viewed", "purchased"]), "within_days": rng.choice([3, 30, 400]),
                              "min": rng.choice([0, 1, 2]), **({"max": 2} if rng.random() < 0.3 else {}),
                              **({"category": "tea"} if rng.random() < 0.3 else {})}}
    if pick < 0.35:
        field, ops = rng.choice([
            ("orders.total", [("gt", 20), ("lte", 35.5), ("between", [10, 40]), ("eq", 0), ("in", [0, 20])]),
            ("orders.count", [("gte", 1), ("lt", 2), ("neq", 1)]),
            ("orders.last_at", [("within_days", 10), ("older_than_days", 5), ("gt", "2024-05-25"), ("exists", None), ("missing", None)]),
            ("profile.email", [("contains", "@ex"), ("starts_with", "p1"), ("eq", "p3@ex.com"), ("exists", None), ("not_in", ["p2@ex.com"])]),
        ])
    else:
        field = f"attributes.{rng.choice(['tier', 'score', 'tags'])}"
        ops = [("eq", rng.choice(["gold", 1, 10, True, "2024-05-20"])), ("neq", "gold"), ("gt", 1.5), ("lte", 2.5),
               ("between", [0, 10]), ("in", ["gold", 2.5, True]), ("not_in", ["silver", 1]), ("contains", rng.choice(["ol", "a", "b"])),
               ("starts_with", "G"), ("exists", None), ("missing", None), ("has_any", ["a", "1"]), ("has_all", ["a", "b"]),
               ("has_none", ["b"]), ("within_days", 30), ("older_than_days", 30), ("gt", "2024-01-01")]
    op, value = rng.choice(ops)
    return {"field": field, "op": op} if value is None else {"field": field, "op": op, "value": value}


def test_python_and_sql_agree_on_random_rules_and_data(site):
    rng = random.Random(5)
    pids = []
    for i in range(40):
        pid = resolve_contact(site.id, email=f"p{i}@ex.com")
        pids.append(pid)
        attrs = {name: rng.choice(ATTR_VALUES) for name in ("tier", "score", "tags") if rng.random() < 0.8}
        set_attributes(site.id, pid, {k: v for k, v in attrs.items() if v is not None}, "test", commit=False)
        for j in range(rng.randint(0, 3)):
            db.session.add(Order(site_id=site.id, external_id=f"o{i}-{j}", profile_id=pid, total=rng.choice([5.0, 10.0, 15.5, 20.0]),
                                 occurred_at=NOW - timedelta(days=rng.randint(0, 20)), source="test"))
    db.session.commit()
    ingest_events(get_site(site.id), [
        {"id": f"b{i}", "type": "product_viewed", "visitor": f"x{i % 7}", "product_id": rng.choice(["tea-pot", "run-cap"]), "ts": 1717000000000 + i}
        for i in range(30)
    ])
    from personalize.segments.live import RuleSet, load_facts
    from personalize.segments.rules import evaluate
    from personalize.segments.store import CompiledSegment

    everyone = list(db.session.scalars(select(Profile.id).where(Profile.site_id == site.id)))
    rules = [validate_rule(random_rule(rng)) for _ in range(150)]
    every = RuleSet.of((), [CompiledSegment(i, f"r{i}", r) for i, r in enumerate(rules)])
    facts = {p: load_facts(site.id, p, NOW, every) for p in everyone}
    for rule in rules:
        in_sql = set(db.session.scalars(matching(site.id, rule, NOW)))
        in_python = {p for p in everyone if evaluate(rule, facts[p], NOW)}
        assert in_sql == in_python, rule


def test_membership_follows_events_and_rebuilds(app, site):
    s = get_site(site.id)
    seg = create_segment(site.id, {"key": "tea-browsers", "rule": {"behaviour": {"event": "product_viewed", "category": "tea", "min": 2, "within_days": 30}}})
    rebuild_segment(site.id, seg.key)
    ingest_events(s, [{"id": "e1", "type": "product_viewed", "visitor": "new", "product_id": "tea-pot"}])
    pid = profile_for_visitor(site.id, "new")
    assert "tea-browsers" not in evaluate_profile(site.id, pid)
    ingest_events(s, [{"id": "e2", "type": "product_viewed", "visitor": "new", "product_id": "tea-cup"}])
    client = app.test_client()
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    body = client.get(f"/api/v1/profiles/{pid}", headers=auth).json
    assert [x["key"] for x in body["segments"]] == ["tea-browsers"]
    changes = client.get("/api/v1/segments/changes?segment=tea-browsers", headers=auth).json["changes"]
    assert [(c["profile_id"], c["change"]) for c in changes][-1] == (pid, "entered")
    # a dependent segment follows in the same pass
    create_segment(site.id, {"key": "tea-known", "rule": {"and": [{"segment": "tea-browsers"}, {"field": "attributes.vip", "op": "eq", "value": True}]}})
    set_attributes(site.id, pid, {"vip": True}, "crm")
    assert {"tea-browsers", "tea-known"} <= evaluate_profile(site.id, pid)
    assert rebuild_segment(site.id, "tea-known")["members"] == 1


def test_hook_segment_membership_changed(app, site):
    from personalize import hookimpl

    heard = []

    class Listener:
        @hookimpl
        def segment_membership_changed(self, site_id, changes):
            heard.extend((site_id, c.segment, c.added, c.email) for c in changes)

    app.extensions["personalize.plugins"].pm.register(Listener())
    create_segment(site.id, {"key": "gold", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}})
    pid = resolve_contact(site.id, email="g@example.com")
    set_attributes(site.id, pid, {"tier": "gold"}, "crm")
    set_attributes(site.id, pid, {"tier": "silver"}, "crm")
    assert heard == [(site.id, "gold", True, "g@example.com"), (site.id, "gold", False, "g@example.com")]


def test_segments_api_crud_preview_and_members(app, site):
    app.config["SEGMENT_REBUILD_INLINE"] = True
    client = app.test_client()
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    rule = {"field": "orders.count", "op": "gte", "value": 1}
    assert client.post("/api/v1/segments/preview", json={"rule": rule}, headers=auth).json == {"count": 24}
    r = client.post("/api/v1/segments", json={"key": "buyers", "name": "Buyers", "rule": rule}, headers=auth)
    assert r.status_code == 201 and r.json["member_count"] == 24 and r.json["status"] == "ready"
    again = client.post("/api/v1/segments", json={"key": "buyers", "rule": rule}, headers=auth)
    assert again.status_code == 409 and again.json["error"]["field"] == "key"
    bad = client.post("/api/v1/segments", json={"key": "x", "rule": {"field": "nope", "op": "eq", "value": 1}}, headers=auth)
    assert bad.status_code == 400 and bad.json["error"]["field"] == "rule.field"
    assert client.post("/api/v1/segments", json={"key": "y", "rule": rule}, headers={"Authorization": f"Bearer {site.public_key}"}).status_code == 403
    page = client.get("/api/v1/segments/buyers/members?limit=10", headers=auth).json
    assert len(page["members"]) == 10 and page["member_count"] == 24
    nxt = client.get(f"/api/v1/segments/buyers/members?limit=100&after={page['next']}", headers=auth).json
    assert len(nxt["members"]) == 14
    r = client.patch("/api/v1/segments/buyers", json={"rule": {"field": "orders.count", "op": "gte", "value": 5}}, headers=auth)
    assert r.json["member_count"] == 0
    left = client.get("/api/v1/segments/changes?after=0&limit=5000", headers=auth).json["changes"]
    assert sum(c["change"] == "left" for c in left) == 24
    assert client.delete("/api/v1/segments/buyers", headers=auth).json == {"deleted": "buyers"}
    assert client.get("/api/v1/segments/buyers", headers=auth).status_code == 404


def test_contact_policy(app, site):
    from personalize.segments import policy

    client = app.test_client()
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    r = client.put("/api/v1/contact-policy", json={"channels": {"email": {"per_day": 1, "per_week": 2}}}, headers=auth)
    assert r.json == {"channels": {"email": {"per_day": 1, "per_week": 2}}}
    pid = resolve_contact(site.id, email="p@example.com")
    t = datetime(2024, 6, 3, 9)
    assert policy.allow(site.id, pid, "email", t)
    policy.record(site.id, pid, "email", t)
    assert not policy.allow(site.id, pid, "email", t + timedelta(hours=5)), "one a day"
    assert policy.allow(site.id, pid, "email", t + timedelta(hours=25))
    policy.record(site.id, pid, "email", t + timedelta(hours=25))
    assert not policy.allow(site.id, pid, "email", t + timedelta(days=3)), "two a week"
    assert policy.allow(site.id, pid, "email", t + timedelta(days=8))
    assert policy.allow(site.id, pid, "sms", t), "no policy on a channel: no limit"
    set_attributes(site.id, pid, {"unsubscribed_sms": True}, "crm")
    assert not policy.allow(site.id, pid, "sms", t)
