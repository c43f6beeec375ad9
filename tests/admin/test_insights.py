"""Test and learn: the holdout, attribution by rec_id, the lift and its interval, the dashboard."""

from __future__ import annotations

import math
import random
import time

import pytest

from personalize.insights import holdout_share, in_holdout, set_holdout_share, site_report
from personalize.insights.holdout import hash_point
from personalize.insights.stats import compare_means, compare_rates
from personalize.profiles import ingest_events
from personalize.recommend.service import recommend_for
from personalize.sites import get_site

from .conftest import post


def test_holdout_is_stable_per_visitor_and_close_to_the_share(trained):
    s = get_site(trained.id)
    assert not in_holdout(s, "anyone"), "off by default"
    set_holdout_share(s, 0.2)
    visitors = [f"v{i}" for i in range(4000)]
    held = {v for v in visitors if in_holdout(s, v)}
    assert 0.17 < len(held) / len(visitors) < 0.23
    assert held == {v for v in visitors if in_holdout(s, v)}, "the same answer every time"
    set_holdout_share(s, 0.3)
    assert held <= {v for v in visitors if in_holdout(s, v)}, "a larger share only adds visitors"
    assert hash_point(s.id, "v1") != hash_point(s.id + 1, "v1"), "each site draws its own groups"
    with pytest.raises(ValueError):
        set_holdout_share(s, 0.9)


def test_held_out_visitors_get_best_sellers_with_strategy_holdout(trained):
    s = get_site(trained.id)
    set_holdout_share(s, 0.5)
    held = next(f"runner-{i}" for i in range(12) if in_holdout(s, f"runner-{i}"))
    kept = next(f"runner-{i}" for i in range(12) if not in_holdout(s, f"runner-{i}"))
    a, b = recommend_for(s, held, "home", 4), recommend_for(s, kept, "home", 4)
    assert a.strategy == "holdout" and b.strategy == "personal"
    assert {i["reason"] for i in a.items} == {"Popular right now"}
    other_held = next(f"tea-{i}" for i in range(12) if in_holdout(s, f"tea-{i}"))
    assert [i["id"] for i in recommend_for(s, other_held, "home", 4).items] == [i["id"] for i in a.items], "the same list for everyone"
    assert "tea-timer" not in [i["id"] for i in a.items], "out of stock never shows"
    s.settings = {**s.settings, "rules": {"exclude": [a.items[0]["id"]]}}
    from personalize.db import db

    db.session.commit()
    assert a.items[0]["id"] not in [i["id"] for i in recommend_for(s, held, "home", 4).items], "shop exclusions apply"


def _visit(site, visitor, strategy, rec_id, clicked=None, bought=None, price=10.0, slot="home", ts=None):
    ts = ts or int(time.time() * 1000) - 3_600_000
    events = [{"id": f"{rec_id}-i", "type": "rec_impression", "visitor": visitor, "rec_id": rec_id, "slot": slot,
               "strategy": strategy, "items": ["run-shoe", "tea-pot"], "ts": ts}]
    if clicked:
        events.append({"id": f"{rec_id}-c", "type": "rec_clicked", "visitor": visitor, "rec_id": rec_id, "slot": slot,
                       "product_id": clicked, "position": 1, "strategy": strategy, "ts": ts + 1000})
        events.append({"id": f"{rec_id}-a", "type": "product_added", "visitor": visitor, "rec_id": rec_id,
                       "product_id": clicked, "price": price, "ts": ts + 2000})
    if bought:
        events.append({"id": f"{rec_id}-o", "type": "order_completed", "visitor": visitor, "order_id": f"{rec_id}-o",
                       "rec_id": rec_id if clicked else None, "revenue": price,
                       "items": [{"product_id": bought, "quantity": 1, "price": price}], "ts": ts + 3000})
    for e in events:
        if e.get("rec_id") is None:
            e.pop("rec_id", None)
    ingest_events(site, events)


def test_report_attributes_clicks_carts_and_orders_to_slot_and_strategy(site):
    s = get_site(site.id)
    _visit(s, "p1", "personal", "r_a", clicked="run-shoe", bought="run-shoe", price=120.0)
    _visit(s, "p2", "personal", "r_b", clicked="tea-pot")
    _visit(s, "h1", "holdout", "r_c", slot="product")
    _visit(s, "h2", "holdout", "r_d", bought="tea-cup", price=18.0)  # bought without a click: not attributed
    report = site_report(site.id, days=7)
    assert (report.total.impressions, report.total.clicks, report.total.carts, report.total.orders) == (4, 2, 2, 1)
    assert report.total.revenue == 120.0
    assert report.by_strategy["personal"].orders == 1 and report.by_strategy["holdout"].clicks == 0
    assert report.by_slot["home"].impressions == 3 and report.by_slot["product"].impressions == 1
    assert report.by_slot["home"].ctr == pytest.approx(2 / 3)
    assert sum(t.impressions for t in report.by_day.values()) == 4
    assert report.groups["personalized"].visitors == 2 and report.groups["personalized"].converted == 1
    assert report.groups["holdout"].visitors == 2 and report.groups["holdout"].revenue == 18.0, "every order counts in the group comparison"
    assert report.conversion is None, "too few visitors for an interval"


def test_an_order_for_a_list_shown_before_the_window_keeps_its_slot(site):
    s = get_site(site.id)
    old = int(time.time() * 1000) - 20 * 86_400_000
    _visit(s, "p1", "personal", "r_old", slot="cart", ts=old)
    ingest_events(s, [{"id": "late-o", "type": "order_completed", "visitor": "p1", "order_id": "late", "rec_id": "r_old",
                       "revenue": 50.0, "items": [{"product_id": "run-cap", "quantity": 1, "price": 50.0}]}])
    report = site_report(site.id, days=7)
    assert report.by_slot["cart"].orders == 1 and report.by_slot["cart"].revenue == 50.0


def test_rate_interval_matches_the_textbook_formula():
    c = compare_rates("conversion", 300, 1000, 200, 1000)
    se = math.sqrt(0.3 * 0.7 / 1000 + 0.2 * 0.8 / 1000)
    assert c.difference == pytest.approx(0.1)
    assert c.difference_low == pytest.approx(0.1 - 1.96 * se, abs=1e-4)
    assert c.lift == pytest.approx(0.5) and c.lift_low < 0.5 < c.lift_high and c.significant
    assert compare_rates("conversion", 3, 10, 2, 10) is None


def test_mean_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = random.Random(3)
    covered = 0
    for _ in range(300):
        a = [rng.expovariate(1 / 12.0) if rng.random() < 0.3 else 0.0 for _ in range(200)]
        b = [rng.expovariate(1 / 10.0) if rng.random() < 0.3 else 0.0 for _ in range(200)]
        c = compare_means("revenue_per_visitor", a, b)
        covered += c.difference_low <= 0.3 * 2.0 <= c.difference_high
    assert 0.91 < covered / 300 < 0.99


def test_dashboard_shows_numbers_charts_and_the_holdout(as_owner, site):
    s = get_site(site.id)
    _visit(s, "p1", "personal", "r_a", clicked="run-shoe", bought="run-shoe", price=120.0)
    page = as_owner.get(f"/admin/sites/{site.id}/dashboard?days=7").get_data(as_text=True)
    assert 'id="kpi-orders">1<' in page and "120.00" in page
    assert page.count("<svg") >= 5 and "Not enough data" in page
    r = post(as_owner, f"/admin/sites/{site.id}/holdout", {"share": "15"})
    assert r.status_code == 302 and holdout_share(get_site(site.id)) == 0.15
    r = post(as_owner, f"/admin/sites/{site.id}/holdout", {"share": "80"}, follow_redirects=True)
    assert b"between 0 and 50" in r.data and holdout_share(get_site(site.id)) == 0.15


def test_live_check_reports_the_newest_event(as_owner, site):
    data = as_owner.get(f"/admin/sites/{site.id}/live").json
    assert data["last_event_type"] == "order_completed" and data["events_last_hour"] == 0, "the fixture's events happened in 2023"
    ingest_events(get_site(site.id), [{"id": "now", "type": "page_viewed", "visitor": "v9", "url": "https://shop.example/"}])
    data = as_owner.get(f"/admin/sites/{site.id}/live").json
    assert data["last_event_type"] == "page_viewed" and data["events_last_hour"] == 1 and data["seconds_ago"] < 60


def test_holdout_and_lift_commands(app, site):
    from click.testing import CliRunner

    from personalize.cli import cli

    runner = CliRunner()
    env = {"PERSONALIZE_INSTANCE_PATH": app.instance_path, "PERSONALIZE_DATABASE_URL": app.config["DATABASE_URL"]}
    result = runner.invoke(cli, ["holdout", "--share", "12.5"], env=env)
    assert result.exit_code == 0 and "holdout 12.5 % of visitors" in result.output
    assert runner.invoke(cli, ["holdout", "--share", "80"], env=env).exit_code != 0
    result = runner.invoke(cli, ["lift", "--days", "7"], env=env)
    assert result.exit_code == 0 and "not enough visitors yet" in result.output
