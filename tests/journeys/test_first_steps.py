"""New entries' first steps: a journey whose flow starts the same for everyone (a wait of a
duration, a wait for an event, an action) has its first step rows made from one template, and
they are the rows the step-by-step mover stores (which still handles branches, splits, waits
until a time of the person's day and flows that end at once)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from personalize.db import db
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.journeys.store import live_journeys
from personalize.journeys.triggers import Candidate, enter, first_step_template, first_steps
from personalize.sites import get_site

from .support import EMAIL_STEP, customers, journey

NOW = datetime(2026, 5, 4, 10, 30, 15, 123456)
FIRSTS = {
    "wait": [{"id": "w1", "type": "wait", "seconds": 3600}, {"id": "w2", **EMAIL_STEP}],
    "wait_event": [{"id": "e1", "type": "wait_event", "event": "order_completed", "seconds": 600,
                    "branches": {"received": [], "timeout": [{"id": "e2", "type": "exit"}]}}],
    "email": [{"id": "m1", **EMAIL_STEP}],
    "webhook": [{"id": "h1", "type": "webhook", "url": "https://hooks.example/in"}],
    "set_attribute": [{"id": "a1", "type": "set_attribute", "name": "vip", "value": True}],
    "wait_until": [{"id": "u1", "type": "wait", "until": "09:00"}],
    "branch": [{"id": "b1", "type": "branch", "rule": {"field": "attributes.vip", "op": "eq", "value": True},
                "branches": {"yes": [{"id": "b2", "type": "wait", "seconds": 60}], "no": []}}, {"id": "b3", **EMAIL_STEP}],
    "split": [{"id": "p1", "type": "split", "shares": {"a": 50, "b": 50},
               "branches": {"a": [{"id": "p2", "type": "wait", "seconds": 60}], "b": [{"id": "p3", "type": "exit"}]}}],
    "exit": [{"id": "x1", "type": "exit"}],
}
TEMPLATED = {"wait", "wait_event", "email", "webhook", "set_attribute"}
COLUMNS = ("site_id", "journey_id", "enrollment_id", "profile_id", "step_id", "kind", "state", "outcome", "due_at", "claim",
           "attempts", "signal", "idempotency_key", "detail", "entered_at", "done_at")


@pytest.mark.parametrize("first", sorted(FIRSTS))
def test_first_steps_are_the_rows_the_mover_stores(inline, site, first):
    people = customers(get_site(site.id), 6, prefix=f"f{first[:3]}")
    j = journey(site.id, f"first-{first.replace('_', '-')}", {"trigger": {"type": "api"}, "reentry": {"mode": "every_time"},
                                                               "control": 30, "steps": FIRSTS[first]})
    live = next(x for x in live_journeys(site.id).journeys if x.id == j.id)
    assert (first_step_template(live, NOW, True) is not None) == (first in TEMPLATED)
    entered = enter(live, [Candidate(pid, f"t:{pid}", "api", {"n": i}) for i, pid in enumerate(people)], NOW)
    assert sorted(pid for _e, pid, _c in entered) == sorted(people)

    wanted: list[tuple] = []
    ends: list = []
    first_steps(live, [(eid, pid, control, {"n": 0}) for eid, pid, control in entered], NOW, wanted, ends)
    s = JourneyStep.__table__
    stored = [tuple(r) for r in db.session.execute(select(*(s.c[name] for name in COLUMNS)).where(s.c.journey_id == j.id))]
    assert sorted(stored, key=repr) == sorted(wanted, key=repr)
    assert stored, "every entry has a first step row"
    status = dict(db.session.execute(select(JourneyEnrollment.id, JourneyEnrollment.status).where(JourneyEnrollment.journey_id == j.id)).all())
    assert {eid for eid, st in status.items() if st != "active"} == {eid for eid, *_rest in ends}
