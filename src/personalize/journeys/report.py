"""What a journey did and what it earned: counts per step, and conversion and revenue per person
against the control group, with the dashboard's 95 % intervals (:mod:`personalize.insights.stats`).

The comparison is intention-to-treat: everyone who entered counts in their group
(journey or control), whether or not an action reached them (a skipped email, a person
without consent), over the same window after entering (the journey's ``goal_days``).
Conversion is the goal (an order by default) in that window; revenue is the total of the
person's orders in it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal_column, select

from ..db import db
from ..insights.stats import Comparison, compare_means, compare_rates
from ..models import Event, Order, utcnow
from .definition import Flow
from .models import Journey, JourneyEnrollment, JourneyStep

BRANCH_OUTCOMES = ("yes", "no", "a", "b", "c", "d", "received", "timed_out")
SKIPS = ("skipped_consent", "skipped_recent", "skipped_remote")


@dataclass
class StepCounts:
    entered: int = 0
    waiting: int = 0
    acted: int = 0
    control: int = 0
    skipped_cap: int = 0
    skipped: int = 0
    failed: int = 0
    exited: int = 0
    goal: int = 0
    branches: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Group:
    people: int = 0
    converted: int = 0
    revenue: float = 0.0

    @property
    def conversion(self) -> float:
        return self.converted / self.people if self.people else 0.0

    @property
    def revenue_per_person(self) -> float:
        return self.revenue / self.people if self.people else 0.0


@dataclass
class JourneyReport:
    entered: int
    active: int
    statuses: dict[str, int]
    steps: dict[str, StepCounts]
    journey: Group
    control: Group
    conversion: Comparison | None
    revenue: Comparison | None
    goal_days: int
    since: datetime | None = None


def step_counts(journey_id: int) -> dict[str, StepCounts]:
    """Per step id (over every version): how many reached it, wait there, were acted on,
    skipped (by the contact policy's cap, or otherwise), failed, left there, or reached the goal."""
    out: dict[str, StepCounts] = defaultdict(StepCounts)
    rows = db.session.execute(
        select(JourneyStep.step_id, JourneyStep.state, JourneyStep.outcome, func.count())
        .where(JourneyStep.journey_id == journey_id).group_by(JourneyStep.step_id, JourneyStep.state, JourneyStep.outcome)
    ).all()
    for step_id, state, outcome, n in rows:
        c = out[step_id]
        c.entered += n
        if state == "due":
            c.waiting += n
        elif outcome == "acted":
            c.acted += n
        elif outcome == "control":
            c.control += n
        elif outcome == "skipped_cap":
            c.skipped_cap += n
        elif outcome in SKIPS:
            c.skipped += n
        elif outcome == "failed":
            c.failed += n
        elif outcome in ("exited", "cancelled"):
            c.exited += n
        elif outcome == "goal":
            c.goal += n
        if outcome in BRANCH_OUTCOMES:
            c.branches[outcome] = c.branches.get(outcome, 0) + n
    return dict(out)


def _window_end(column, days: int):
    if db.session.get_bind().dialect.name == "postgresql":
        return column + literal_column(f"interval '{int(days)} days'")
    return func.datetime(column, f"+{int(days)} days")


def outcomes(journey: Journey, definition: dict, since: datetime | None = None) -> tuple[list[tuple[bool, bool, float]], int]:
    """Per entry: ``(control, converted, revenue)`` over the goal window after entering."""
    days = int(definition.get("goal_days") or 7)
    e = JourneyEnrollment.__table__
    o = Order.__table__
    end = _window_end(e.c.entered_at, days)
    where = [e.c.journey_id == journey.id]
    if since is not None:
        where.append(e.c.entered_at >= since)
    revenue = (
        select(e.c.id, e.c.control, func.count(o.c.id), func.coalesce(func.sum(o.c.total), 0.0))
        .select_from(e.outerjoin(o, and_(o.c.site_id == e.c.site_id, o.c.profile_id == e.c.profile_id, o.c.occurred_at >= e.c.entered_at, o.c.occurred_at < end)))
        .where(*where).group_by(e.c.id, e.c.control)
    )
    rows = {i: [bool(c), n > 0, float(total or 0.0)] for i, c, n, total in db.session.execute(revenue)}
    goal = definition.get("goal") or {"type": "order"}
    if goal.get("type") == "event":
        ev = Event.__table__
        hits = select(e.c.id).select_from(e.join(ev, and_(ev.c.profile_id == e.c.profile_id, ev.c.type == goal["event"],
                                                          ev.c.occurred_at >= e.c.entered_at, ev.c.occurred_at < end))).where(*where).distinct()
        converted = set(db.session.scalars(hits))
        for i, row in rows.items():
            row[1] = i in converted
    return [tuple(r) for r in rows.values()], days  # type: ignore[misc]


def journey_report(journey: Journey, definition: dict | None = None, since: datetime | None = None) -> JourneyReport:
    from .store import live_definition

    definition = definition or live_definition(journey) or journey.definition
    statuses = dict(db.session.execute(
        select(JourneyEnrollment.status, func.count()).where(JourneyEnrollment.journey_id == journey.id).group_by(JourneyEnrollment.status)
    ).all())
    per_entry, days = outcomes(journey, definition, since)
    groups = {True: Group(), False: Group()}
    values: dict[bool, list[float]] = {True: [], False: []}
    for control, converted, revenue in per_entry:
        g = groups[control]
        g.people += 1
        g.converted += int(converted)
        g.revenue += revenue
        values[control].append(revenue)
    treated, control = groups[False], groups[True]
    return JourneyReport(
        entered=sum(statuses.values()), active=statuses.get("active", 0), statuses=statuses, steps=step_counts(journey.id),
        journey=treated, control=control,
        conversion=compare_rates("conversion", treated.converted, treated.people, control.converted, control.people),
        revenue=compare_means("revenue per person", values[False], values[True]),
        goal_days=days, since=since,
    )


def flow_rows(definition: dict, counts: dict[str, StepCounts]) -> list[dict[str, Any]]:
    """The steps in display order with their depth, branch label and counts (the builder and report)."""
    flow = Flow.of(definition)
    out = []
    for sid in flow.order:
        parent = flow.parent.get(sid)
        first_in_branch = parent is not None and (flow.steps[parent[0]].get("branches") or {}).get(parent[1], [{}])[0].get("id") == sid
        out.append({"step": flow.steps[sid], "depth": flow.depth(sid), "parent": parent, "first_in_branch": first_in_branch,
                    "counts": counts.get(sid, StepCounts())})
    return out


def journeys_of_profile(profile_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """A person's entries, newest first, each with its journey and the steps it went through."""
    rows = db.session.execute(
        select(JourneyEnrollment.id, Journey.key, Journey.name, JourneyEnrollment.status, JourneyEnrollment.exit_reason,
               JourneyEnrollment.entered_at, JourneyEnrollment.finished_at, JourneyEnrollment.control, JourneyEnrollment.source,
               JourneyEnrollment.version)
        .join(Journey, Journey.id == JourneyEnrollment.journey_id)
        .where(JourneyEnrollment.profile_id == profile_id).order_by(JourneyEnrollment.entered_at.desc(), JourneyEnrollment.id.desc()).limit(limit)
    ).all()
    ids = [r[0] for r in rows]
    steps: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if ids:
        for eid, step_id, kind, state, outcome, due, entered, done, detail in db.session.execute(
            select(JourneyStep.enrollment_id, JourneyStep.step_id, JourneyStep.kind, JourneyStep.state, JourneyStep.outcome,
                   JourneyStep.due_at, JourneyStep.entered_at, JourneyStep.done_at, JourneyStep.detail)
            .where(JourneyStep.enrollment_id.in_(ids)).order_by(JourneyStep.entered_at, JourneyStep.id)
        ):
            steps[eid].append({"step_id": step_id, "kind": kind, "state": state, "outcome": outcome, "due_at": due,
                               "entered_at": entered, "done_at": done, "detail": detail or {}})
    return [
        {"id": eid, "key": key, "name": name, "status": status, "reason": reason, "entered_at": entered, "finished_at": finished,
         "control": bool(control), "source": source, "version": version, "steps": steps.get(eid, [])}
        for eid, key, name, status, reason, entered, finished, control, source, version in rows
    ]


def recent_window(days: int = 90) -> datetime:
    return utcnow() - timedelta(days=days)
