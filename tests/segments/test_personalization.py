"""Segments feed personalization: popular with customers like you, and rules per segment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from personalize.db import db
from personalize.models import Order
from personalize.profiles import ingest_events, profile_for_visitor, set_attributes
from personalize.segments.models import ProfileScore
from personalize.segments.store import create_segment
from personalize.sites import get_site


def score(pid: int, site_id: int, cluster: str) -> None:
    db.session.add(ProfileScore(
        profile_id=pid, site_id=site_id, orders=1, total_spent=20.0, avg_order=20.0, recency_days=1.0, tenure_days=1.0,
        r_score=5, f_score=1, m_score=1, rfm="511", rfm_segment="New customers", value=20.0, attrition=0.1,
        expected_orders=1.0, potential=20.0, cluster=0, cluster_name=cluster, computed_at=datetime(2024, 1, 1),
    ))


def test_popular_with_customers_like_you(client, site):
    from personalize.recommend.service import train_site

    buyers = set(db.session.scalars(select(Order.profile_id).where(Order.site_id == site.id)))
    for pid in buyers:
        score(pid, site.id, "Frequent small-basket buyers, active")
    ingest_events(get_site(site.id), [{"id": "pv", "type": "page_viewed", "visitor": "lookalike"}])
    score(profile_for_visitor(site.id, "lookalike"), site.id, "Frequent small-basket buyers, active")
    db.session.commit()
    train_site(site.id)
    items = client.get(f"/api/v1/recommendations?key={site.public_key}&visitor=lookalike").json["items"]
    assert items and all(i["reason"] == "Popular with customers like you" for i in items)
    stranger = client.get(f"/api/v1/recommendations?key={site.public_key}&visitor=stranger").json["items"]
    assert stranger[0]["reason"] == "Popular right now"


def test_recommendation_rules_per_segment(client, trained):
    site = get_site(trained.id)
    site.settings = {"rules": {"segments": {"gold": {"pin": ["tea-pot"], "exclude": ["run-sock"]}}}}
    db.session.commit()
    create_segment(trained.id, {"key": "gold", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}})
    member = profile_for_visitor(trained.id, "runner-0")
    set_attributes(trained.id, member, {"tier": "gold"}, "crm")
    mine = [i["id"] for i in client.get(f"/api/v1/recommendations?key={trained.public_key}&visitor=runner-0").json["items"]]
    theirs = [i["id"] for i in client.get(f"/api/v1/recommendations?key={trained.public_key}&visitor=runner-1").json["items"]]
    assert mine[0] == "tea-pot" and "run-sock" not in mine
    assert theirs[0] != "tea-pot"
