"""Running a connector's journey action the way a journey does: a person enters a journey whose
one step is the action, and the runner carries it out against the local provider server."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from personalize.db import db
from personalize.journeys.batches import run_due
from personalize.journeys.models import JourneyStep
from personalize.journeys.store import create_journey, live_journeys, set_status
from personalize.journeys.triggers import Candidate, enter
from personalize.models import utcnow


def run_action_step(site_id: int, connection: str, action: str, params: dict, profile_ids: list[int], key: str = "act", sleep=None) -> dict:
    """``{profile id: (outcome, detail)}`` of a journey step running ``action`` for these people."""
    j = create_journey(site_id, key, key, {"trigger": {"type": "api"}, "control": 0, "reentry": {"mode": "every_time"},
                                           "steps": [{"id": "s1", "type": "connector", "connection": connection, "action": action, "params": params}]})
    set_status(j, "active")
    live = next(x for x in live_journeys(site_id).journeys if x.id == j.id)
    enter(live, [Candidate(pid, f"api:{pid}", "api") for pid in profile_ids])
    run_due(now=utcnow() + timedelta(seconds=1), sleep=sleep)
    rows = db.session.execute(select(JourneyStep.profile_id, JourneyStep.outcome, JourneyStep.detail, JourneyStep.idempotency_key)
                              .where(JourneyStep.journey_id == j.id)).all()
    return {pid: (outcome, detail, key) for pid, outcome, detail, key in rows}
