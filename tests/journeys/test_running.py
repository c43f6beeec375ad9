"""How steps get run: the scheduler's clock runs due steps by itself, sends them to Celery
workers when a broker is set, and stopping a journey ends everyone's entry."""

from __future__ import annotations

import time

from sqlalchemy import select

from personalize.db import db
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.journeys.store import get_journey, set_status
from personalize.profiles import ingest_events
from personalize.sites import get_site

from .support import T0, customer, journey


def test_the_clock_runs_due_steps_without_being_asked(inline, site):
    from personalize.jobs import submitter
    from personalize.journeys.clock import start_clock

    s = get_site(site.id)
    ann = customer(s, "ann-v", "ann@example.com")
    journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                           "steps": [{"id": "s1", "type": "set_attribute", "name": "tagged", "value": "yes"}]})
    clock = start_clock(inline, submit=submitter(inline))
    try:
        ingest_events(s, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0}])
        deadline = time.monotonic() + 20
        outcome = None
        while time.monotonic() < deadline:
            db.session.remove()
            outcome = db.session.scalar(select(JourneyStep.outcome).where(JourneyStep.profile_id == ann))
            if outcome:
                break
            time.sleep(0.05)
    finally:
        clock.stop()
        clock.join(10)
    assert outcome == "acted"


def test_with_a_broker_the_clock_sends_journeys_run_jobs(app, site, broker_queue):
    from personalize.jobs import submitter
    from personalize.journeys.clock import JourneyClock

    app.config["JOURNEY_INBOX"] = "inline"
    with app.app_context():
        s = get_site(site.id)
        customer(s, "ann-v", "ann@example.com")
        journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                               "steps": [{"id": "s1", "type": "set_attribute", "name": "tagged", "value": "yes"}]})
        ingest_events(s, [{"id": "ann-add", "type": "product_added", "visitor": "ann-v", "product_id": "run-shoe", "ts": T0}])
        db.session.remove()
    JourneyClock(app, submitter(app)).tick()
    names = {broker_queue.take()[1][0] for _ in range(2)}
    assert names == {"journeys_run", "journeys_triggers"}


def test_stopping_a_journey_ends_every_entry_and_pausing_holds_them(inline, site, clock):
    from personalize.journeys.batches import run_due

    s = get_site(site.id)
    ann = customer(s, "ann-v", "ann@example.com")
    bob = customer(s, "bob-v", "bob@example.com")
    j = journey(site.id, "j", {"trigger": {"type": "event", "event": "product_added"}, "control": 0,
                               "steps": [{"id": "s1", "type": "wait", "seconds": 60}, {"id": "s2", "type": "set_attribute", "name": "x", "value": 1}]})
    ingest_events(s, [{"id": f"{v}-add", "type": "product_added", "visitor": f"{v}-v", "product_id": "run-shoe", "ts": T0} for v in ("ann", "bob")])
    set_status(j, "paused")
    assert run_due(now=clock.advance(minutes=5)).claimed == 0, "a paused journey's steps wait"
    set_status(get_journey(site.id, "j"), "stopped")
    statuses = dict(db.session.execute(select(JourneyEnrollment.profile_id, JourneyEnrollment.status)).all())
    assert statuses == {ann: "exited", bob: "exited"}
    assert {tuple(r) for r in db.session.execute(select(JourneyStep.state, JourneyStep.outcome))} == {("done", "exited")}
    ingest_events(s, [{"id": "ann-add-2", "type": "product_added", "visitor": "ann-v", "product_id": "tea-pot", "ts": T0 + 1}])
    assert db.session.scalar(select(JourneyEnrollment.id).where(JourneyEnrollment.status == "active")) is None, "nobody enters a stopped journey"
