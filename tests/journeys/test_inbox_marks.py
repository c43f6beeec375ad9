"""The inbox marks: the catch-up does not read again what a living process's inbox handled, and
still reads whatever no mark vouches for (a process that died, an import, a journey just changed)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from personalize.db import db
from personalize.journeys import listener
from personalize.journeys.models import Journey, JourneyEnrollment, JourneyInboxMark
from personalize.journeys.triggers import catch_up_events, unmarked
from personalize.models import Event, utcnow
from personalize.profiles import ingest_events, storer_token
from personalize.sites import get_site

from .support import T0, customer, journey, notifications_lost

VIEWS = {"trigger": {"type": "event", "event": "product_viewed"}, "reentry": {"mode": "every_time"}, "control": 0,
         "steps": [{"id": "s1", "type": "wait", "seconds": 3600}]}


def _view(site, name: str, n: int = 0) -> None:
    ingest_events(site, [{"id": f"{name}-view-{n}", "type": "product_viewed", "visitor": f"{name}-v", "product_id": "tea-pot", "ts": T0 + n}])


def _read_counts(caplog) -> list[int]:
    return [int(r.getMessage().rsplit(": ", 1)[1].split()[0]) for r in caplog.records if r.getMessage().startswith("journeys catch-up: events")]


@pytest.fixture
def marking(app, monkeypatch):
    """The inbox thread notes a mark after every drain, vouching for what was stored before the drain began."""
    monkeypatch.setattr(listener, "MARK_SECONDS", 0.0)
    monkeypatch.setattr(listener, "MARK_MARGIN_SECONDS", 0.0)
    app.config["JOURNEY_INBOX"] = "thread"
    return listener.inbox(app)


def test_what_a_living_inbox_handled_is_not_read_again_and_a_dead_processs_events_are(app, site, clock, marking, caplog):
    s = get_site(site.id)
    ann, bob = (customer(s, f"{n}-v", f"{n}@example.com") for n in ("ann", "bob"))
    j = journey(site.id, "views", VIEWS)
    catch_up_events(clock.now)  # the cursor starts at the newest event
    # the journey's last change is long settled: every process has heard of it (right after a change the
    # catch-up reads everything: a process may not have seen the journey yet)
    db.session.execute(update(Journey).where(Journey.id == j.id).values(updated_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    _view(s, "ann")
    assert marking.wait_idle(10)
    assert set(db.session.scalars(select(JourneyEnrollment.profile_id).where(JourneyEnrollment.journey_id == j.id))) == {ann}
    token = storer_token()
    mark = db.session.get(JourneyInboxMark, token)
    assert mark is not None, "the inbox noted its mark"
    ann_row = db.session.scalar(select(Event).where(Event.event_id == "ann-view-0"))
    assert ann_row.stored_by == token and ann_row.received_at < mark.handled_before
    # bob's event was stored by a process that died before its inbox handled it: its token has no mark
    with notifications_lost(app):
        _view(s, "bob")
    db.session.execute(update(Event).where(Event.event_id == "bob-view-0").values(stored_by=12345))
    db.session.commit()
    caplog.set_level(logging.DEBUG, logger="personalize.journeys.triggers")
    assert catch_up_events(clock.advance(seconds=120)) == 1, "bob's missed entry is made"
    assert sum(_read_counts(caplog)) == 1, "only bob's event was read: the inbox vouched for ann's"
    assert set(db.session.scalars(select(JourneyEnrollment.profile_id).where(JourneyEnrollment.journey_id == j.id))) == {ann, bob}


def test_the_marks_vouch_only_for_their_own_process_before_the_mark_and_after_a_journey_change(app, site):
    """Which stored events the catch-up reads, for every kind of row: no token (an import, older
    rows), a token without a mark, a time on either side of its mark, a time before a journey changed."""
    s = get_site(site.id)
    for name in ("imp", "dead", "early", "late", "changed"):
        customer(s, f"{name}-v", None)
        _view(s, name)
    now = utcnow()
    rows = {
        "imp": (None, now),
        "dead": (777, now),
        "early": (1, now - timedelta(seconds=30)),
        "late": (1, now + timedelta(seconds=30)),
        "changed": (2, now - timedelta(minutes=10)),
    }
    for name, (token, at) in rows.items():
        db.session.execute(update(Event).where(Event.event_id == f"{name}-view-0").values(stored_by=token, received_at=at))
    db.session.commit()
    e = Event.__table__
    marks = {1: now, 2: now}
    mine = e.c.event_id.in_([f"{name}-view-0" for name in rows])
    read = set(db.session.scalars(select(e.c.event_id).where(mine, unmarked(e, marks, now - timedelta(minutes=5)))))
    assert read == {"imp-view-0", "dead-view-0", "late-view-0", "changed-view-0"}
    read = set(db.session.scalars(select(e.c.event_id).where(mine, unmarked(e, marks, now - timedelta(hours=1)))))
    assert read == {"imp-view-0", "dead-view-0", "late-view-0"}, "long after the last change, the marks vouch"
    assert unmarked(e, {}, None) is None, "without marks, every event is read"


def test_a_mark_not_written_for_an_hour_is_forgotten(app, site, clock):
    journey(site.id, "views", VIEWS)
    catch_up_events(clock.now)
    db.session.add(JourneyInboxMark(token=99, handled_before=utcnow(), updated_at=utcnow() - timedelta(hours=2)))
    db.session.add(JourneyInboxMark(token=98, handled_before=utcnow(), updated_at=utcnow()))
    db.session.commit()
    catch_up_events(clock.advance(seconds=61))
    assert sorted(db.session.scalars(select(JourneyInboxMark.token))) == [98]
