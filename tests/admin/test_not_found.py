"""A page for something the site does not have (never had, removed, or another site's) is a 404
saying "No such …", whatever the kind of thing and whether it is read or changed."""

from __future__ import annotations

import pytest

from personalize.sites import create_site

from .conftest import make_user, post, sign_in


@pytest.fixture
def other_site_rows(site):
    """A segment and a journey that exist, but on another site."""
    from personalize.journeys.store import create_journey
    from personalize.segments.store import create_segment

    other, _secret = create_site("Other shop", ["https://other.example"])
    create_segment(other.id, {"key": "theirs", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}})
    create_journey(other.id, "theirs", "Theirs", {"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    return other.id


def assert_no_such(r, what: str) -> None:
    assert r.status_code == 404
    assert f"No such {what}." in r.get_data(as_text=True)
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store", "an admin page like the others"


def test_missing_things_are_404_pages_naming_them(as_owner, site, other_site_rows):
    from personalize.journeys.store import create_journey

    create_journey(site.id, "ours", "Ours", {"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    base = f"/admin/sites/{site.id}"
    assert_no_such(as_owner.get("/admin/sites/999999"), "site")
    for path in (f"{base}/connectors/nope/settings",):
        assert_no_such(as_owner.get(path), "connection")
    for path in ("test", "sync", "delete"):
        assert_no_such(post(as_owner, f"{base}/connectors/nope/{path}"), "connection")
    for key in ("nope", "theirs"):
        assert_no_such(as_owner.get(f"{base}/segments/{key}"), "segment")
        assert_no_such(as_owner.get(f"{base}/segments/{key}/edit"), "segment")
        assert_no_such(post(as_owner, f"{base}/segments/{key}/rebuild"), "segment")
        assert_no_such(post(as_owner, f"{base}/segments/{key}/delete"), "segment")
        assert_no_such(as_owner.get(f"{base}/journeys/{key}"), "journey")
        assert_no_such(post(as_owner, f"{base}/journeys/{key}/status", {"action": "activate"}), "journey")
        assert_no_such(post(as_owner, f"{base}/journeys/{key}/steps/s1", {"amount": "5", "unit": "days"}), "journey")
    assert_no_such(post(as_owner, f"{base}/journeys/ours/steps/s9", {"amount": "5", "unit": "days"}), "step")
    assert_no_such(post(as_owner, f"{base}/journeys/ours/steps/s9/delete"), "step")
    assert_no_such(post(as_owner, f"{base}/journeys/ours/steps/s1/test", {"to": "me@shop.example"}), "email step")
    assert_no_such(as_owner.get(f"{base}/profiles/999999"), "profile (it may have been erased)")
    assert_no_such(as_owner.get(f"{base}/profiles/999999/export"), "profile")
    assert_no_such(post(as_owner, f"{base}/profiles/999999/erase", {"confirm": "erase"}), "profile")
    assert_no_such(as_owner.get(f"{base}/experiments/999999"), "experiment")
    assert_no_such(post(as_owner, f"{base}/experiments/999999/status", {"action": "start"}), "experiment")
    assert_no_such(post(as_owner, "/admin/team/999999", {"role": "viewer"}), "user")
    assert_no_such(post(as_owner, "/admin/team/999999/remove"), "user")


def test_a_site_out_of_reach_is_no_such_site_before_anything_else(client, site, other_site_rows):
    make_user("ed@shop.example", "editor", [site.id])
    sign_in(client, "ed@shop.example")
    assert_no_such(client.get(f"/admin/sites/{other_site_rows}/segments/theirs"), "site")
    assert_no_such(post(client, f"/admin/sites/{other_site_rows}/journeys/theirs/status", {"action": "activate"}), "site")
    assert client.get(f"/admin/sites/{site.id}/segments/theirs").status_code == 404
