"""What someone trying the demo sees first in the admin: named customers with emails, segments
with members, computed scores, orders on a profile, and a dashboard with a month of traffic."""

from __future__ import annotations

import re

from sqlalchemy import func, select


def signed_in_client(app, info):
    client = app.test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/admin/login", data={"email": info["admin_email"], "password": info["admin_password"], "csrf_token": token})
    assert r.status_code == 302
    return client


def test_customers_are_named_with_emails(built):
    from personalize.db import db
    from personalize.models import Profile
    from personalize.profiles import attributes_of

    app, info, _progress = built
    assert info["customers"]["named"] > 20
    with app.app_context():
        profiles = db.session.scalars(select(Profile).where(Profile.site_id == info["site_id"], Profile.email.is_not(None))).all()
        assert len(profiles) >= info["customers"]["named"]  # every customer who ordered; journeys' shoppers besides
        assert all(p.email.endswith("@example.com") for p in profiles)
        for p in profiles[:50]:
            names = attributes_of(p.id)
            assert names["name"]["value"] == f"{names['first_name']['value']} {names['last_name']['value']}"


def test_segments_have_members_and_customers_have_scores(built):
    from personalize.db import db
    from personalize.segments.models import ProfileScore
    from personalize.segments.store import all_segments

    app, info, _progress = built
    with app.app_context():
        segments = {s.key: s for s in all_segments(info["site_id"])}
        assert {"big-spenders", "repeat-customers", "coffee-lovers", "likely-to-order", "slipping-away"} <= set(segments)
        assert all(s.status == "ready" for s in segments.values())
        assert segments["repeat-customers"].member_count > 0 and segments["coffee-lovers"].member_count > 0
        scored = db.session.scalar(select(func.count()).select_from(ProfileScore).where(ProfileScore.site_id == info["site_id"]))
        assert scored == info["customers"]["scored"] > 20


def test_the_site_has_its_currency(built):
    from personalize.catalog.currency import site_currency
    from personalize.sites import get_site

    app, info, _progress = built
    with app.app_context():
        assert site_currency(get_site(info["site_id"])) == "EUR"


def test_a_customers_profile_lists_their_orders_with_the_products(built):
    from personalize.db import db
    from personalize.models import Order

    app, info, _progress = built
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.site_id == info["site_id"], Order.profile_id.is_not(None)).limit(1)).one()
        profile_id, external_id = order.profile_id, order.external_id
    client = signed_in_client(app, info)
    html = client.get(f"/admin/sites/{info['site_id']}/profiles/{profile_id}").get_data(as_text=True)
    section = html[html.index('id="orders"'):html.index('id="timeline"')]
    assert f"<code>{external_id}</code>" in section
    assert re.search(r'<ul class="order-lines"><li>.+ <code class="muted">', section), section[:500]
    assert "EUR" in section


def test_the_dashboards_month_has_traffic_on_every_part_of_it(built):
    from personalize.insights.report import site_report

    app, info, _progress = built
    with app.app_context():
        report = site_report(info["site_id"], days=30)
    busy = [d for d in report.days if report.by_day.get(d) and report.by_day[d].impressions]
    assert len(busy) >= 25, f"impressions on {len(busy)} of 30 days"
    assert busy[0] <= report.days[3], "the month's first days are not empty"
