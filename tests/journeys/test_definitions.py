"""Definitions: validation that names the field, versions that never strand people in flight,
random splits, and date triggers."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.definition import Flow, validate_definition
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.journeys.runner import split_label
from personalize.journeys.store import publish, save_definition
from personalize.journeys.triggers import run_date_triggers
from personalize.profiles import ingest_events
from personalize.sites import get_site
from personalize.validation import InvalidInput

from .support import EMAIL_STEP, T0, customer, journey, mail_settings


@pytest.mark.parametrize(("bad", "field"), [
    ({"trigger": {"type": "event", "event": "nope"}}, "trigger.event"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait"}]}, "steps[0].seconds"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait", "seconds": 1}, {"id": "s1", "type": "exit"}]}, "steps[1].id"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "branch", "rule": {"field": "x"}, "branches": {}}]}, "steps[0].rule.field"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "split", "shares": {"a": 50, "b": 40}}]}, "steps[0].shares"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "email", "subject": "{{ x", "html": "y"}]}, "steps[0].subject"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "webhook", "url": "ftp://x.example"}]}, "steps[0].url"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "webhook", "url": "https://u:p@x.example/"}]}, "steps[0].url"),
    ({"trigger": {"type": "api"}, "control": 80}, "control"),
    ({"trigger": {"type": "api"}, "limits": {"quiet_start": "25:00", "quiet_end": "08:00"}}, "limits.quiet_start"),
    ({"trigger": {"type": "event", "event": "product_added"}, "exit": {"on_segment_exit": True}}, "exit.on_segment_exit"),
    ({"trigger": {"type": "api"}, "steps": [{"id": "s1", "type": "wait_event", "event": "order_completed", "seconds": 60,
                                              "branches": {"received": [{"id": "s2", "type": "bogus"}]}}]}, "steps[0].branches.received[0].type"),
])
def test_invalid_definitions_name_the_field(bad, field):
    with pytest.raises(InvalidInput) as caught:
        validate_definition(bad)
    assert caught.value.field == field, caught.value


def test_the_flow_joins_branches_back():
    flow = Flow.of(validate_definition({"trigger": {"type": "api"}, "steps": [
        {"id": "s1", "type": "branch", "rule": {"field": "orders.count", "op": "gt", "value": 0},
         "branches": {"yes": [{"id": "s2", "type": "wait", "seconds": 1}], "no": []}},
        {"id": "s3", "type": "exit"},
    ]}))
    assert flow.branch_start("s1", "yes") == "s2" and flow.after["s2"] == "s3"
    assert flow.branch_start("s1", "no") == "s3", "an empty branch goes straight to the step after"
    assert flow.after["s3"] is None and flow.order == ["s1", "s2", "s3"]


def test_splits_are_stable_and_follow_their_shares():
    picks = Counter(split_label({"a": 20, "b": 80}, n, "s1") for n in range(4000))
    assert 0.17 < picks["a"] / 4000 < 0.23
    assert all(split_label({"a": 50, "b": 50}, n, "s1") == split_label({"a": 50, "b": 50}, n, "s1") for n in range(50))


def test_people_in_flight_move_to_a_new_version_by_step_id_or_finish_on_theirs(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    ann = customer(site, "ann-v", "ann@example.com")
    bob = customer(site, "bob-v", "bob@example.com")
    v1 = {"trigger": {"type": "event", "event": "product_added"}, "control": 0, "reentry": {"mode": "once"},
          "steps": [{"id": "s1", "type": "wait", "seconds": 3600}, {"id": "s2", **EMAIL_STEP, "subject": "Version one"},
                    {"id": "s3", "type": "wait", "seconds": 3600}, {"id": "s4", **EMAIL_STEP, "subject": "Old follow-up"}]}
    j = journey(site.id, "j", v1)
    ingest_events(site, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0}])
    run_due(now=clock.advance(hours=1, seconds=1))  # Ann got version one's email and waits at s3
    ingest_events(site, [{"id": "bob-add", "type": "product_added", "visitor": "bob-v", "product_id": "tea-pot", "ts": T0}])  # Bob waits at s1
    v2 = {**v1, "steps": [{"id": "s1", "type": "wait", "seconds": 3600}, {"id": "s2", **EMAIL_STEP, "subject": "Version two"}]}
    save_definition(j, v2)
    assert publish(j) == 2
    run_due(now=clock.advance(hours=1, seconds=1))
    run_due(now=clock.now)
    subjects = {m["to"][0]: [] for m in smtp_server.mailbox.messages}
    for m in smtp_server.mailbox.messages:
        subjects[m["to"][0]].append(m["message"]["Subject"])
    assert subjects["bob@example.com"] == ["Version two"], "Bob's step s1 exists in version 2: he moved to it"
    assert subjects["ann@example.com"] == ["Version one", "Old follow-up"], "s3 is gone from version 2: Ann finishes version 1"
    versions = dict(db.session.execute(select(JourneyEnrollment.profile_id, JourneyEnrollment.version)).all())
    assert versions == {ann: 1, bob: 2}
    assert dict(db.session.execute(select(JourneyEnrollment.profile_id, JourneyEnrollment.status)).all()) == {ann: "completed", bob: "completed"}


def test_birthday_trigger_fires_once_on_the_day_after_the_local_time(inline, trained, clock):
    from personalize.profiles import set_attributes

    site = get_site(trained.id)
    now = clock.now
    today = now.date()
    ann = customer(site, "ann-v", "ann@example.com", birthday=f"1990-{today:%m-%d}")
    customer(site, "bob-v", "bob@example.com", birthday=f"1990-{(today + timedelta(days=2)):%m-%d}")
    set_attributes(site.id, ann, {"note": "x"}, "test")
    journey(site.id, "birthday", {"trigger": {"type": "date", "field": "attributes.birthday", "yearly": True, "at": "00:00"},
                                  "reentry": {"mode": "every_time"}, "control": 0,
                                  "steps": [{"id": "s1", "type": "set_attribute", "name": "greeted", "value": True}]})
    assert run_date_triggers(now) == 1
    assert run_date_triggers(now + timedelta(minutes=5)) == 0, "the same day's occurrence enters once"
    assert db.session.scalars(select(JourneyEnrollment.profile_id)).all() == [ann]
    run_due(now=clock.advance(seconds=1))
    assert db.session.scalar(select(JourneyStep.outcome)) == "acted"
