"""The demo's journeys: live, with two weeks of history replayed through the engine, so their
reports and a shopper's journey timeline have numbers on first open."""

from __future__ import annotations

from sqlalchemy import func, select

from personalize.db import db
from personalize.journeys.models import JourneyEnrollment, JourneyStep
from personalize.journeys.report import journey_report, journeys_of_profile
from personalize.journeys.store import get_journey


def test_three_live_journeys_with_history(built):
    app, info, _progress = built
    with app.app_context():
        site_id = info["site_id"]
        assert info["journeys"]["emails"] > 0 and info["journeys"]["events_replayed"] > 0
        reports = {}
        for key in ("cart-abandonment", "post-purchase", "browse-abandonment"):
            j = get_journey(site_id, key)
            assert j is not None and j.status == "active" and j.version == 1
            reports[key] = journey_report(j)
            assert reports[key].entered > 0, key
        cart = reports["cart-abandonment"]
        assert cart.control.people > 0 and cart.journey.people > cart.control.people
        assert any(c.acted for c in cart.steps.values()), "emails went out (recorded: the demo sends nothing)"
        recorded = db.session.scalars(select(JourneyStep.detail).where(JourneyStep.kind == "email", JourneyStep.outcome == "acted").limit(5)).all()
        assert recorded and all(d["recorded"] for d in recorded)
        assert info["journeys"]["orders_from_emails"] > 0, "some people an email reached came back and ordered"
        emailed_control = db.session.scalar(
            select(func.count()).select_from(JourneyStep).join(JourneyEnrollment, JourneyEnrollment.id == JourneyStep.enrollment_id)
            .where(JourneyEnrollment.control.is_(True), JourneyStep.outcome == "acted"))
        assert emailed_control == 0, "the control groups get no action"
        someone = db.session.scalar(select(JourneyEnrollment.profile_id).order_by(JourneyEnrollment.id).limit(1))
        timeline = journeys_of_profile(someone)
        assert timeline and timeline[0]["steps"]
        # the clock did not leak: nobody reached a goal before entering, nothing is dated after now
        assert db.session.scalar(select(func.count()).select_from(JourneyEnrollment).where(JourneyEnrollment.goal_at < JourneyEnrollment.entered_at)) == 0
