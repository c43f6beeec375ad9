"""``POST /api/v1/journeys/<journey>/enrollments``: a shop's server enters people into a journey."""

from __future__ import annotations

from sqlalchemy import select

from personalize.db import db
from personalize.journeys.models import JourneyEnrollment, JourneyStep

from .support import customer, journey


def post(client, site, journey_key: str, body: dict, secret: str | None = None):
    return client.post(f"/api/v1/journeys/{journey_key}/enrollments", json=body,
                       headers={"Authorization": f"Bearer {secret or site.secret_key}"})


def test_enter_by_email_id_or_visitor_once_per_idempotency_key(inline, site, client):
    from personalize.sites import get_site

    ann = customer(get_site(site.id), "ann-v", "ann@example.com")
    journey(site.id, "welcome", {"trigger": {"type": "api"}, "reentry": {"mode": "every_time"}, "control": 0,
                                 "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    r = post(client, site, "welcome", {"email": "new.person@example.com", "data": {"plan": "gold", "trial_days": 14}})
    assert r.status_code == 201, r.get_json()
    new_id = r.get_json()["profile_id"]
    assert r.get_json()["entered"] is True and r.get_json()["control"] is False
    entry = db.session.get(JourneyEnrollment, r.get_json()["enrollment_id"])
    assert entry.data == {"plan": "gold", "trial_days": 14} and entry.source == "api"
    assert db.session.scalar(select(JourneyStep.step_id).where(JourneyStep.enrollment_id == entry.id)) == "s1"
    r = post(client, site, "welcome", {"visitor": "ann-v", "idempotency_key": "signup-1"})
    assert r.status_code == 201 and r.get_json()["profile_id"] == ann
    again = post(client, site, "welcome", {"profile_id": ann, "idempotency_key": "signup-1"})
    assert again.status_code == 200 and again.get_json() == {"entered": False, "profile_id": ann, "reason": "already in the journey"}
    assert post(client, site, "welcome", {"email": "new.person@example.com"}).get_json()["profile_id"] == new_id


def test_refusals_name_the_field_and_another_sites_journey_is_not_found(inline, site, client):
    from personalize.sites import create_site

    journey(site.id, "welcome", {"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    journey(site.id, "draft", {"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]}, activate=False)
    journey(site.id, "on-event", {"trigger": {"type": "event", "event": "product_added"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    other, other_secret = create_site("Other shop")
    journey(other.id, "theirs", {"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 60}]})
    cases = [
        ({"email": "x@example.com", "visitor": "v"}, 400, "profile_id"),
        ({}, 400, "profile_id"),
        ({"email": "not an email"}, 400, "email"),
        ({"profile_id": "7"}, 400, "profile_id"),
        ({"profile_id": 10**6}, 404, "profile_id"),
        ({"visitor": "nobody"}, 404, "visitor"),
        ({"email": "a@example.com", "data": {"nested": {"a": 1}}}, 400, "data.nested"),
        ({"email": "a@example.com", "colour": "red"}, 400, "colour"),
        ({"email": "a@example.com", "idempotency_key": ""}, 400, "idempotency_key"),
    ]
    for body, status, field in cases:
        r = post(client, site, "welcome", body)
        assert (r.status_code, r.get_json()["error"]["field"]) == (status, field), (body, r.get_json())
    assert post(client, site, "draft", {"email": "a@example.com"}).get_json()["error"]["code"] == "journey_not_active"
    assert post(client, site, "on-event", {"email": "a@example.com"}).get_json()["error"]["code"] == "not_api_triggered"
    theirs = post(client, site, "theirs", {"email": "a@example.com"})
    missing = post(client, site, "nothing-here", {"email": "a@example.com"})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json()["error"]["message"].replace("theirs", "X") == missing.get_json()["error"]["message"].replace("nothing-here", "X")
    assert post(client, site, "welcome", {"email": "a@example.com"}, secret=site.public_key).status_code == 403
    assert post(client, site, "welcome", {"email": "a@example.com"}, secret=other_secret).status_code == 404
