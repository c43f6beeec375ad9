"""The profile page says, in the owner's words, how likely the customer is to order in the next
30 days and what they are likely to buy next; the segment builder offers the propensity fields."""

from __future__ import annotations

import html
from datetime import datetime

from sqlalchemy import select

from personalize.db import db
from personalize.models import Profile
from personalize.segments.models import ProfileScore


def scored(site_id: int, profile_id: int, order: float | None, categories: dict | None) -> None:
    db.session.add(ProfileScore(
        profile_id=profile_id, site_id=site_id, orders=3, total_spent=90.0, avg_order=30.0, recency_days=12.0, tenure_days=200.0,
        r_score=4, f_score=3, m_score=3, rfm="433", rfm_segment="Loyal customers", value=90.0, attrition=0.1, expected_orders=2.0,
        potential=60.0, cluster=0, cluster_name="Frequent mid-basket buyers, active", computed_at=datetime(2024, 6, 1),
        order_propensity=order, category_propensity=categories,
    ))
    db.session.commit()


def scores_card(client, site_id: int, profile_id: int) -> str:
    page = client.get(f"/admin/sites/{site_id}/profiles/{profile_id}").get_data(as_text=True)
    card = page[page.index('id="segments-of-profile"'):page.index('id="attributes"')]
    return html.unescape(card)


def test_the_profile_page_shows_the_propensities(as_owner, site):
    a, b, c, d = db.session.scalars(select(Profile.id).where(Profile.site_id == site.id).order_by(Profile.id).limit(4))
    scored(site.id, a, 0.4213, {"Tea": 0.31, "Mugs <b>": 0.1234, "Candles": 0.004})
    scored(site.id, b, 0.0021, None)
    scored(site.id, c, None, None)
    scored(site.id, d, 0.9991, {})

    card = scores_card(as_owner, site.id, a)
    assert "Chance of ordering in the next 30 days</th><td>42 %" in card
    assert "Likely to buy next</th><td>Tea (31 %), Mugs <b> (12 %), Candles (under 1 %)" in card
    assert "<b>" not in as_owner.get(f"/admin/sites/{site.id}/profiles/{a}").get_data(as_text=True), "a category is text, not markup"

    card = scores_card(as_owner, site.id, b)
    assert "the next 30 days</th><td>under 1 %" in card and "your products have no categories" in card
    card = scores_card(as_owner, site.id, c)
    assert "not computed yet: recompute the scores" in card
    card = scores_card(as_owner, site.id, d)
    assert "the next 30 days</th><td>over 99 %" in card and "not enough purchases yet to tell" in card


def test_the_rule_builder_offers_propensity_fields(as_owner, site):
    page = as_owner.get(f"/admin/sites/{site.id}/segments/new").get_data(as_text=True)
    assert '<option value="scores.order_propensity" label="Chance of ordering in the next 30 days (0-1)">' in page
    assert '<option value="scores.category_propensity.tea" label="Chance of buying in tea (0-1)">' in page and 'value="scores.category_propensity.running"' in page


def test_the_segments_page_counts_who_is_expected_to_order(as_owner, site):
    ids = list(db.session.scalars(select(Profile.id).where(Profile.site_id == site.id).order_by(Profile.id).limit(5)))
    for pid, p in zip(ids, (0.9, 0.6, 0.3, 0.1, None), strict=True):
        scored(site.id, pid, p, None)
    page = html.unescape(as_owner.get(f"/admin/sites/{site.id}/segments").get_data(as_text=True))
    card = page[page.index('id="ordering-next-30-days"'):]
    assert "About 2 of these customers are expected to order in the next 30 days" in card.replace("<strong>", "").replace("</strong>", "")
    assert "likely (50 % or more)</td><td>2" in card and "possible (20 to 50 %)</td><td>1" in card and "unlikely (under 20 %)</td><td>1" in card
