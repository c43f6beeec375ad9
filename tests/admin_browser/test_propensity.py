"""What the owner sees of purchase propensity in a real browser: the profile's chances, in words."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from personalize.db import db
from personalize.models import Profile
from personalize.segments.models import ProfileScore

from .conftest import sign_in

pytestmark = pytest.mark.browser


def test_the_profile_page_reads_out_the_chances(admin_page, live_server, owner, site, shoot):
    pid = db.session.scalar(select(Profile.id).where(Profile.site_id == site.id).order_by(Profile.id).limit(1))
    db.session.add(ProfileScore(
        profile_id=pid, site_id=site.id, orders=4, total_spent=120.0, avg_order=30.0, recency_days=9.0, tenure_days=240.0,
        r_score=5, f_score=4, m_score=3, rfm="543", rfm_segment="Champions", value=120.0, attrition=0.05, expected_orders=3.1,
        potential=93.0, cluster=0, cluster_name="Frequent mid-basket buyers, active", computed_at=datetime(2024, 6, 1),
        order_propensity=0.42, category_propensity={"tea": 0.31, "running": 0.08},
    ))
    db.session.commit()
    page, base = admin_page, live_server.url
    sign_in(page, base, *owner)
    page.goto(f"{base}/admin/sites/{site.id}/profiles/{pid}")
    assert page.inner_text("#order-propensity") == "Chance of ordering in the next 30 days\t42 %"
    assert page.inner_text("#category-propensity") == "Likely to buy next\ttea (31 %), running (8 %)"
    assert page.locator("#order-propensity").is_visible() and page.locator("#category-propensity").is_visible()
    shoot(page, "profile-propensity", "#segments-of-profile")
    assert not page.errors, page.errors
