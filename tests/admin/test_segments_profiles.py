"""Segment pages (rule builder with a live count, members, computed segments) and profile
pages (search, the 360° view, export, erase)."""

from __future__ import annotations

import json

import pytest

from personalize.profiles import ingest_events
from personalize.segments.store import get_segment
from personalize.sites import get_site

from .conftest import make_user, post, sign_in


@pytest.fixture(autouse=True)
def inline_rebuilds(app):
    app.config["SEGMENT_REBUILD_INLINE"] = True


def builder(**rows):
    form = {"combine": "and", "mode": "builder"}
    form.update(rows)
    return form


def test_live_count_follows_the_rule(as_owner, site):
    url = f"/admin/sites/{site.id}/segments/count"
    everyone = post(as_owner, url, builder(c0_field="orders.count", c0_op="gte", c0_value="1")).json["count"]
    assert everyone == 24
    bigger = post(as_owner, url, builder(c0_field="orders.count", c0_op="gte", c0_value="1", c1_field="orders.total", c1_op="gt", c1_value="25")).json
    assert bigger["count"] == 12, "the runners and tea lovers who bought three things"
    viewed = post(as_owner, url, builder(b0_event="product_viewed", b0_product_id="run-cap", b0_min="1")).json
    assert viewed["count"] == 4
    r = post(as_owner, url, builder(c0_field="orders.count", c0_op="gte", c0_value="lots"))
    assert r.status_code == 400 and r.json["error"] == "condition 1.value: gte compares numbers or dates"
    r = post(as_owner, url, {"mode": "json", "rule_json": '{"or": [{"segment": "nope"}'})
    assert r.status_code == 400 and "not valid JSON" in r.json["error"]


def test_build_a_segment_and_see_its_members(as_owner, site):
    r = post(as_owner, f"/admin/sites/{site.id}/segments/new",
             {"key": "big-baskets", "name": "Big baskets", **builder(c0_field="orders.total", c0_op="gt", c0_value="25")})
    assert r.status_code == 302
    seg = get_segment(site.id, "big-baskets")
    assert seg.rule == {"and": [{"field": "orders.total", "op": "gt", "value": 25}]} and seg.member_count == 12
    page = as_owner.get(f"/admin/sites/{site.id}/segments/big-baskets").get_data(as_text=True)
    assert page.count(f'href="/admin/sites/{site.id}/profiles/') == 12
    edit = as_owner.get(f"/admin/sites/{site.id}/segments/big-baskets/edit").get_data(as_text=True)
    assert 'value="orders.total"' in edit and 'value="25"' in edit, "the builder shows the saved rule"
    listing = as_owner.get(f"/admin/sites/{site.id}/segments").get_data(as_text=True)
    assert "Big baskets" in listing and "Scores have not been computed yet" in listing


def test_nested_rules_are_edited_as_json(as_owner, site):
    rule = {"or": [{"and": [{"field": "orders.count", "op": "gte", "value": 1}]}, {"not": {"field": "profile.email", "op": "exists"}}]}
    r = post(as_owner, f"/admin/sites/{site.id}/segments/new", {"key": "nested", "mode": "json", "rule_json": json.dumps(rule)})
    assert r.status_code == 302 and get_segment(site.id, "nested").rule == rule
    edit = as_owner.get(f"/admin/sites/{site.id}/segments/nested/edit").get_data(as_text=True)
    assert 'name="mode" value="json" id="mode-json" checked' in edit


def test_invalid_segments_are_named_and_not_saved(as_owner, site):
    r = post(as_owner, f"/admin/sites/{site.id}/segments/new", {"key": "Bad Key", **builder(c0_field="orders.count", c0_op="gte", c0_value="1")})
    assert r.status_code == 400 and b"key: must be 1-64 lowercase" in r.data
    r = post(as_owner, f"/admin/sites/{site.id}/segments/new", {"key": "empty", **builder()})
    assert r.status_code == 400 and b"add at least one condition" in r.data
    assert get_segment(site.id, "empty") is None


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # 24 customers with near-identical baskets
def test_computed_segment_sizes(as_owner, site):
    from personalize.segments.scores import compute_scores

    compute_scores(site.id)
    page = as_owner.get(f"/admin/sites/{site.id}/segments").get_data(as_text=True)
    assert 'id="rfm-sizes"' in page and 'id="cluster-sizes"' in page and "24 customers scored" in page


def test_profile_search_360_export_and_erase(as_owner, trained):
    s = get_site(trained.id)
    ingest_events(s, [{"id": "who", "type": "identify", "visitor": "runner-4", "email": "ann@shop.example", "traits": {"plan": "gold"}}])
    r = as_owner.get(f"/admin/sites/{trained.id}/profiles?q=ann@shop.example")
    assert r.status_code == 302
    page = as_owner.get(r.headers["Location"]).get_data(as_text=True)
    assert "ann@shop.example" in page and "runner-4" in page and "gold" in page
    assert 'id="recommendations-now"' in page and "data-product=" in page
    assert "Trail running shoe" in page, "the timeline names products"
    profile_id = int(r.headers["Location"].rsplit("/", 1)[1])
    export = as_owner.get(f"/admin/sites/{trained.id}/profiles/{profile_id}/export")
    assert export.headers["Content-Disposition"].startswith("attachment") and export.json["profile"]["email"] == "ann@shop.example"
    r = post(as_owner, f"/admin/sites/{trained.id}/profiles/{profile_id}/erase", follow_redirects=True)
    assert b"Tick the box" in r.data
    r = post(as_owner, f"/admin/sites/{trained.id}/profiles/{profile_id}/erase", {"confirm": "erase"}, follow_redirects=True)
    assert b"were erased" in r.data
    assert as_owner.get(f"/admin/sites/{trained.id}/profiles/{profile_id}").status_code == 404
    r = as_owner.get(f"/admin/sites/{trained.id}/profiles?q=ann@shop.example", follow_redirects=True)
    assert b"No profile has" in r.data


def test_viewer_reads_profiles_but_cannot_export_or_erase(client, site):
    make_user("viewer@shop.example", "viewer", [site.id])
    sign_in(client, "viewer@shop.example")
    r = client.get(f"/admin/sites/{site.id}/profiles?q=runner-1")
    assert r.status_code == 302
    profile_id = int(r.headers["Location"].rsplit("/", 1)[1])
    assert client.get(r.headers["Location"]).status_code == 200
    assert client.get(f"/admin/sites/{site.id}/profiles/{profile_id}/export").status_code == 403
    assert post(client, f"/admin/sites/{site.id}/profiles/{profile_id}/erase", {"confirm": "erase"}).status_code == 403
    assert post(client, f"/admin/sites/{site.id}/segments/new", {"key": "x", **builder(c0_field="orders.count", c0_op="gte", c0_value="1")}).status_code == 403


def test_contact_policy_per_channel(as_owner, site):
    from personalize.segments.policy import get_policies

    post(as_owner, f"/admin/sites/{site.id}/contact-policy", {"new_channel": "email", "new_per_day": "1", "new_per_week": "3"})
    assert get_policies(site.id) == {"email": {"per_day": 1, "per_week": 3}}
    post(as_owner, f"/admin/sites/{site.id}/contact-policy", {"per_day_email": "", "per_week_email": "2"})
    assert get_policies(site.id) == {"email": {"per_day": None, "per_week": 2}}
    r = post(as_owner, f"/admin/sites/{site.id}/contact-policy", {"per_week_email": "lots"}, follow_redirects=True)
    assert b"email.per_week: must be a whole number" in r.data
