"""The guarantees: each step acts once however many runners race, a dead runner's claim is
taken over after its lease and its late writes are refused, and what a lost notification
did not do the catch-up does, once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.journeys.runner import Change, _claimed_again, claim, write
from personalize.journeys.triggers import catch_up_events, catch_up_segments
from personalize.profiles import ingest_events
from personalize.sites import get_site

from .support import EMAIL_STEP, T0, customer, journey, mail_settings, notifications_lost

SIMPLE_EMAIL = {**EMAIL_STEP, "recommendations": 0}


def _people(site, n: int) -> dict[int, str]:
    return {customer(site, f"p{i}-v", f"p{i}@example.com"): f"p{i}@example.com" for i in range(n)}


def test_racing_runners_send_each_email_once(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    people = _people(site, 60)
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                           "steps": [{"id": "s1", "type": "wait", "seconds": 60}, {"id": "s2", **SIMPLE_EMAIL}]})
    ingest_events(site, [{"id": f"add{i}", "type": "product_added", "visitor": f"p{i}-v", "product_id": "tea-pot", "ts": T0 + i} for i in range(60)])
    later = clock.advance(minutes=2)
    errors: list[BaseException] = []

    def runner():
        try:
            with inline.app_context():
                while run_due(limit=7, now=later).claimed:
                    pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    sent = Counter(m["message"]["Message-ID"] for m in smtp_server.mailbox.messages)
    assert len(sent) == 60 and set(sent.values()) == {1}, "every email went out, each once"
    assert sorted(m["to"][0] for m in smtp_server.mailbox.messages) == sorted(people.values())
    done = db.session.scalar(select(func.count()).select_from(JourneyStep).where(JourneyStep.outcome == "acted"))
    assert done == 60


def test_a_dead_runners_claim_is_taken_over_after_its_lease_and_its_late_write_refused(inline, trained, smtp_server, clock):
    site = get_site(trained.id)
    mail_settings(inline, site.id, smtp_server)
    _people(site, 3)
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0, "steps": [{"id": "s1", **SIMPLE_EMAIL}]})
    ingest_events(site, [{"id": f"add{i}", "type": "product_added", "visitor": f"p{i}-v", "product_id": "tea-pot", "ts": T0 + i} for i in range(3)])
    now = clock.advance(seconds=1)
    dead = claim(10, now, 300, "deadrunner")  # a runner that claimed, then was killed
    assert len(dead) == 3
    assert run_due(now=now).claimed == 0, "claimed steps are nobody else's during the lease"
    assert run_due(now=now + timedelta(seconds=301)).acted == 3, "after the lease another runner takes them over"
    assert len(smtp_server.mailbox.messages) == 3
    attempts = db.session.scalars(select(JourneyStep.attempts)).all()
    assert attempts == [2, 2, 2]
    # the "dead" runner wakes up and tries to write what it had: refused, nothing changes
    applied, lost = write([Change(dead[0], outcome="acted")], "deadrunner", now)
    assert (applied, lost) == (0, 1)
    assert _claimed_again("deadrunner") == []
    assert db.session.scalar(select(func.count()).select_from(JourneyStep)) == 3


def test_catch_up_enters_whom_a_lost_notification_missed_and_nobody_twice(app, trained, clock):
    site = get_site(trained.id)
    app.config["JOURNEY_INBOX"] = "inline"
    _people(site, 4)
    journey(site.id, "every", {"trigger": {"type": "event", "event": "product_added"}, "reentry": {"mode": "every_time"}, "control": 0,
                               "steps": [{"id": "s1", "type": "wait", "seconds": 3600}]})
    catch_up_events(clock.now)  # the cursor starts at the newest event: older history never enters
    ingest_events(site, [{"id": "add0", "type": "product_added", "visitor": "p0-v", "product_id": "tea-pot", "ts": T0}])  # heard
    with notifications_lost(app):  # the process dies between the commit and the notification
        ingest_events(site, [{"id": f"add{i}", "type": "product_added", "visitor": f"p{i}-v", "product_id": "tea-pot", "ts": T0 + i} for i in (1, 2)])
    assert db.session.scalar(select(func.count()).select_from(JourneyEnrollment)) == 1
    assert catch_up_events(clock.now) == 0, "events younger than a minute are left to their notification"
    assert catch_up_events(clock.advance(seconds=61)) == 2, "the two missed entries are made; the heard one is not repeated"
    assert catch_up_events(clock.advance(seconds=61)) == 0
    sources = sorted(db.session.scalars(select(JourneyEnrollment.dedupe)))
    assert len(sources) == 3 and len(set(sources)) == 3


def test_catch_up_reads_each_window_whole_and_enters_only_for_the_live_sites_events(app, trained, clock):
    """The catch-up walks its windows by event id: events of a site with no live journey and of
    types no journey hears pass by; the missed ones of the live site are entered, across windows."""
    from personalize.journeys import triggers
    from personalize.sites import create_site

    site = get_site(trained.id)
    other, _secret = create_site("Other shop")
    app.config["JOURNEY_INBOX"] = "inline"
    _people(site, 6)
    journey(site.id, "adds", {"trigger": {"type": "event", "event": "product_added"}, "reentry": {"mode": "every_time"}, "control": 0,
                              "steps": [{"id": "s1", "type": "wait", "seconds": 3600}]})
    catch_up_events(clock.now)
    with notifications_lost(app):  # every notification below is lost
        for i in range(6):
            ingest_events(other, [{"id": f"o{i}", "type": "product_added", "visitor": f"p{i}-v", "product_id": "tea-pot", "ts": T0 + i}])
            ingest_events(site, [{"id": f"v{i}", "type": "product_viewed", "visitor": f"p{i}-v", "product_id": "tea-pot", "ts": T0 + i},
                                 {"id": f"a{i}", "type": "product_added", "visitor": f"p{i}-v", "product_id": "tea-pot", "ts": T0 + i}])
    scan = triggers.SCAN
    triggers.SCAN = 4  # several windows, each mixing the two sites and both types
    try:
        assert catch_up_events(clock.advance(seconds=61)) == 6
    finally:
        triggers.SCAN = scan
    entries = db.session.execute(select(JourneyEnrollment.site_id, JourneyEnrollment.dedupe)).all()
    assert {s for s, _d in entries} == {site.id}
    assert sorted(d.split(":e:")[1] for _s, d in entries) == [f"a{i}" for i in range(6)]
    assert catch_up_events(clock.advance(seconds=61)) == 0, "the cursor passed every window"


def test_catch_up_enters_whom_a_lost_segment_notification_missed_and_nobody_twice(inline, trained, clock):
    from personalize.profiles import set_attributes
    from personalize.segments.store import create_segment

    site = get_site(trained.id)
    create_segment(site.id, {"key": "gold", "name": "Gold", "rule": {"field": "attributes.tier", "op": "eq", "value": "gold"}})
    ann, bob, cat = (customer(site, f"{n}-v", f"{n}@example.com") for n in ("ann", "bob", "cat"))
    journey(site.id, "gold", {"trigger": {"type": "segment_entered", "segment": "gold"}, "control": 0,
                              "steps": [{"id": "s1", "type": "wait", "seconds": 3600}]})
    catch_up_segments(clock.now)  # the cursor starts at the newest change
    set_attributes(site.id, ann, {"tier": "gold"}, "crm")  # heard
    with notifications_lost(inline):  # the process dies between the commit and the notification
        for pid in (bob, cat):
            set_attributes(site.id, pid, {"tier": "gold"}, "crm")

    def entered() -> set[int]:
        return set(db.session.scalars(select(JourneyEnrollment.profile_id)))

    assert entered() == {ann}
    assert catch_up_segments(clock.now) == 0, "changes younger than a minute are left to their notification"
    assert catch_up_segments(clock.advance(seconds=61)) == 2, "the two missed entries are made; the heard one is not repeated"
    assert entered() == {ann, bob, cat}
    assert catch_up_segments(clock.advance(seconds=61)) == 0
