"""Per-arm figures of an experiment, read from the events, with always-valid intervals.

Who counts is a person (a profile), not an id: the visitor ids of one person (two devices, a
visitor who later identified and was merged) count once. A person counts in the arm of the
first list of the experiment they were shown (``rec_impression`` with the arm's rec_id tag),
from that moment on; lists and clicks they had in another arm (an id that reached their profile
only later, when the assignment still followed that id) are left out rather than counted twice.
Per person: whether they clicked one of the experiment's lists in their arm, whether they
ordered from their first list until the experiment ended (all their orders, attributed or
not: an intention-to-treat comparison, as for the holdout) and what they spent. An impression
without a profile counts by its visitor id. Orders that carry an arm's rec_id are also counted
as "orders through the lists", for reading, not for the intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select

from ..db import db
from ..insights.experiments import ArmTotals, Interval, compare
from ..models import Event, Order, utcnow
from ..validation import whole_number
from .models import Experiment


@dataclass
class ArmFigures:
    index: int
    name: str
    override: dict
    totals: ArmTotals
    attributed_orders: int = 0
    attributed_revenue: float = 0.0
    against_control: dict[str, Interval] = field(default_factory=dict)  # empty for the control


@dataclass
class ExperimentReport:
    experiment: Experiment
    arms: list[ArmFigures]
    start: datetime | None
    end: datetime | None
    currency: str = ""

    @property
    def visitors(self) -> int:
        return sum(a.totals.visitors for a in self.arms)

    def leader(self) -> ArmFigures | None:
        """The challenger clearly ahead of the control on the experiment's main metric (the one
        furthest ahead if several are), else ``None``."""
        metric = self.experiment.metric
        ahead = [a for a in self.arms[1:] if a.against_control.get(metric) and a.against_control[metric].verdict == "better"]
        return max(ahead, key=lambda a: a.against_control[metric].difference, default=None)


def _arm_column(prefix: str):
    return func.substr(Event.rec_id, len(prefix) + 1, 1)


def experiment_report(experiment: Experiment, now: datetime | None = None) -> ExperimentReport:
    """Everything the experiment page shows (nothing before it started)."""
    arms = [ArmFigures(i, a["name"], a.get("override") or {}, ArmTotals()) for i, a in enumerate(experiment.arms)]
    start, end = experiment.started_at, experiment.stopped_at or (now or utcnow())
    if start is None:
        _compare(experiment, arms)
        return ExperimentReport(experiment, arms, None, None)
    site_id, prefix = experiment.site_id, f"x{experiment.id}-"
    # the rec_id tag alone says a list belongs to this experiment (no clock of the shopper's browser needed)
    window = (Event.site_id == site_id, Event.rec_id.like(prefix + "%"))
    until = () if experiment.stopped_at is None else (Order.occurred_at <= experiment.stopped_at,)
    arm = _arm_column(prefix)
    # per person, profile id or (no profile) visitor id, and arm: when they first saw a list, how many
    exposures: dict[tuple, dict[str, list]] = {}
    for profile_id, visitor, a, first_at, lists in db.session.execute(
        select(Event.profile_id, Event.visitor, arm, func.min(Event.occurred_at), func.count())
        .where(*window, Event.type == "rec_impression").group_by(Event.profile_id, Event.visitor, arm)
    ):
        person = ("p", profile_id) if profile_id is not None else ("v", visitor)
        seen = exposures.setdefault(person, {}).setdefault(str(a), [first_at, 0])
        seen[0], seen[1] = min(seen[0], first_at), seen[1] + int(lists)
    clicks: dict[tuple, int] = {}
    for profile_id, visitor, a, n in db.session.execute(
        select(Event.profile_id, Event.visitor, arm, func.count()).where(*window, Event.type == "rec_clicked")
        .group_by(Event.profile_id, Event.visitor, arm)
    ):
        key = (("p", profile_id) if profile_id is not None else ("v", visitor), str(a))
        clicks[key] = clicks.get(key, 0) + int(n)
    # orders of each exposed person from their first list on
    first = select(Event.profile_id.label("profile_id"), func.min(Event.occurred_at).label("first_at")).where(
        *window, Event.type == "rec_impression", Event.profile_id.is_not(None)).group_by(Event.profile_id).subquery()
    spent = {
        pid: (int(n), float(total or 0.0)) for pid, n, total in db.session.execute(
            select(first.c.profile_id, func.count(Order.id), func.coalesce(func.sum(Order.total), 0.0))
            .select_from(first).join(Order, and_(Order.site_id == site_id, Order.profile_id == first.c.profile_id,
                                                  Order.occurred_at >= first.c.first_at, *until))
            .group_by(first.c.profile_id))
    }
    sums = [dict(visitors=0, lists=0, clicks=0, clickers=0, buyers=0, revenue=0.0, revenue_squares=0.0) for _ in arms]
    for person, by_arm in exposures.items():
        a, (_first_at, lists) = min(by_arm.items(), key=lambda kv: (kv[1][0], kv[0]))  # the arm they saw first
        i = whole_number(a) if whole_number(a) is not None else -1
        if not 0 <= i < len(arms):
            continue
        orders, revenue = spent.get(person[1], (0, 0.0)) if person[0] == "p" else (0, 0.0)
        s, c = sums[i], clicks.get((person, a), 0)
        s["visitors"] += 1
        s["lists"] += lists
        s["clicks"] += c
        s["clickers"] += 1 if c else 0
        s["buyers"] += 1 if orders else 0
        s["revenue"] += revenue
        s["revenue_squares"] += revenue * revenue
    for figures, s in zip(arms, sums, strict=True):
        figures.totals = ArmTotals(**s)
    order_arm = func.substr(Order.rec_id, len(prefix) + 1, 1)
    for a, n, total in db.session.execute(
        select(order_arm, func.count(), func.coalesce(func.sum(Order.total), 0.0))
        .where(Order.site_id == site_id, Order.rec_id.like(prefix + "%"))
        .group_by(order_arm)
    ):
        if whole_number(str(a)) is not None and whole_number(str(a)) < len(arms):
            arms[int(a)].attributed_orders, arms[int(a)].attributed_revenue = int(n), float(total or 0.0)
    _compare(experiment, arms)
    currency = db.session.scalar(
        select(Order.currency).where(Order.site_id == site_id, Order.occurred_at >= start, Order.currency != "")
        .group_by(Order.currency).order_by(func.count().desc(), Order.currency).limit(1)
    ) or ""
    return ExperimentReport(experiment, arms, start, end, currency)


def _compare(experiment: Experiment, arms: list[ArmFigures]) -> None:
    control = arms[0].totals
    for figures in arms[1:]:
        figures.against_control = compare(figures.totals, control, challengers=len(arms) - 1, n_target=experiment.target_visitors)
