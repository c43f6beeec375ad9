"""The dashboard's numbers for one site: per day, per slot and per strategy, read from the events.

Attribution follows the ``rec_id`` every recommendation list carries: the widget sends it
on ``rec_impression`` and ``rec_clicked`` (with the slot and the strategy that built the
list), and again on a later ``product_added`` or ``order_completed`` for a product that was
clicked in that list (the order stores it in ``orders.rec_id``). An attributed order counts
once, with its whole total, for the list whose ``rec_id`` it carries.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, case, func, literal, select

from ..db import db
from ..models import Event, Order, utcnow
from .holdout import HOLDOUT
from .stats import Comparison, compare_means, compare_rates

UNKNOWN = "unknown"


@dataclass
class Tally:
    """Counts for one day, slot or strategy."""

    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    orders: int = 0
    revenue: float = 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


@dataclass
class Group:
    """One side of the holdout comparison."""

    visitors: int = 0
    converted: int = 0
    revenue: float = 0.0

    @property
    def conversion(self) -> float:
        return self.converted / self.visitors if self.visitors else 0.0

    @property
    def revenue_per_visitor(self) -> float:
        return self.revenue / self.visitors if self.visitors else 0.0


@dataclass
class Report:
    start: date
    end: date
    days: list[date]
    by_day: dict[date, Tally]
    by_day_group: dict[str, dict[date, Tally]]  # "personalized" / "holdout" -> day -> tally
    by_slot: dict[str, Tally]
    by_strategy: dict[str, Tally]
    total: Tally
    groups: dict[str, Group] = field(default_factory=dict)
    conversion: Comparison | None = None
    revenue_per_visitor: Comparison | None = None
    currency: str = ""


def _group_of(strategy: str | None) -> str:
    return "holdout" if strategy == HOLDOUT else "personalized"


def _day(column):
    """A timestamp's UTC day as 'YYYY-MM-DD', computed by the database."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _strategy(table=Event):
    return table.properties["strategy"].as_string()


def site_report(site_id: int, days: int = 30, today: date | None = None) -> Report:
    """Everything the dashboard shows for the ``days`` days up to and including ``today`` (UTC).

    The counting happens in the database (grouped by day, slot and strategy), so the cost
    grows with the number of groups, not with the number of events.
    """
    today = today or utcnow().date()
    start = today - timedelta(days=days - 1)
    since = datetime.combine(start, datetime.min.time())
    until = datetime.combine(today + timedelta(days=1), datetime.min.time())
    day_list = [start + timedelta(days=i) for i in range(days)]
    by_day = {d: Tally() for d in day_list}
    by_day_group = {g: {d: Tally() for d in day_list} for g in ("personalized", "holdout")}
    by_slot: dict[str, Tally] = defaultdict(Tally)
    by_strategy: dict[str, Tally] = defaultdict(Tally)
    total = Tally()

    def add(name: str, day: str, slot: str | None, strategy: str | None, n: int, revenue: float = 0.0) -> None:
        when = date.fromisoformat(day)
        if when not in by_day:
            return
        tallies = (by_day[when], by_day_group[_group_of(strategy)][when], by_slot[slot or UNKNOWN], by_strategy[strategy or UNKNOWN], total)
        for tally in tallies:
            setattr(tally, name, getattr(tally, name) + int(n))
            tally.revenue += revenue

    in_window = (Event.site_id == site_id, Event.occurred_at >= since, Event.occurred_at < until)
    day = _day(Event.occurred_at)
    for kind, name in (("rec_impression", "impressions"), ("rec_clicked", "clicks")):
        rows = _grouped(select(day.label("day"), Event.slot.label("slot"), _strategy().label("strategy"))
                        .where(*in_window, Event.type == kind))
        for d, slot, strategy, n, _revenue in rows:
            add(name, d, slot, strategy, n)

    # add-to-carts and orders carry only the rec_id: the list's slot and strategy come from its impression or click
    carted = select(Event.rec_id).where(*in_window, Event.type == "product_added", Event.rec_id.is_not(None))
    ordered = select(Order.rec_id).where(Order.site_id == site_id, Order.occurred_at >= since, Order.occurred_at < until, Order.rec_id.is_not(None))
    lists = (
        select(Event.rec_id.label("rec_id"), func.max(Event.slot).label("slot"), func.max(_strategy()).label("strategy"))
        .where(Event.site_id == site_id, Event.type.in_(("rec_impression", "rec_clicked")), Event.rec_id.in_(carted.union(ordered)))
        .group_by(Event.rec_id)
    ).subquery()
    rows = _grouped(
        select(day.label("day"), lists.c.slot.label("slot"), lists.c.strategy.label("strategy"))
        .select_from(Event).outerjoin(lists, lists.c.rec_id == Event.rec_id)
        .where(*in_window, Event.type == "product_added", Event.rec_id.is_not(None))
    )
    for d, slot, strategy, n, _revenue in rows:
        add("carts", d, slot, strategy, n)
    rows = _grouped(
        select(_day(Order.occurred_at).label("day"), lists.c.slot.label("slot"), lists.c.strategy.label("strategy"),
               Order.total.label("amount"))
        .select_from(Order).outerjoin(lists, lists.c.rec_id == Order.rec_id)
        .where(Order.site_id == site_id, Order.occurred_at >= since, Order.occurred_at < until, Order.rec_id.is_not(None))
    )
    for d, slot, strategy, n, revenue in rows:
        add("orders", d, slot, strategy, n, revenue)

    groups, values = _exposed_groups(site_id, since, until)
    currency = db.session.execute(
        select(Order.currency, func.count()).where(Order.site_id == site_id, Order.occurred_at >= since, Order.occurred_at < until, Order.currency != "")
        .group_by(Order.currency).order_by(func.count().desc(), Order.currency).limit(1)
    ).first()
    return Report(
        start=start, end=today, days=day_list, by_day=by_day, by_day_group=by_day_group,
        by_slot=dict(sorted(by_slot.items())), by_strategy=dict(sorted(by_strategy.items())), total=total, groups=groups,
        conversion=compare_rates("conversion", groups["personalized"].converted, groups["personalized"].visitors,
                                 groups["holdout"].converted, groups["holdout"].visitors),
        revenue_per_visitor=compare_means("revenue_per_visitor", values["personalized"], values["holdout"]),
        currency=currency[0] if currency else "",
    )


def _grouped(rows_query) -> list[tuple[str, str | None, str | None, int, float]]:
    """(day, slot, strategy, count, summed amount) over the rows of ``rows_query``.

    Grouping happens on a subquery's columns: PostgreSQL does not see two copies of an
    expression with bound parameters (the day format, the JSON key) as the same.
    """
    inner = rows_query.subquery()
    amount = func.coalesce(func.sum(inner.c.amount), 0.0) if "amount" in inner.c else literal(0.0)
    return [
        (d, slot, strategy, int(n), float(total or 0.0))
        for d, slot, strategy, n, total in db.session.execute(
            select(inner.c.day, inner.c.slot, inner.c.strategy, func.count(), amount).group_by(inner.c.day, inner.c.slot, inner.c.strategy)
        )
    ]


def _exposed_groups(site_id: int, since: datetime, until: datetime) -> tuple[dict[str, Group], dict[str, list[float]]]:
    """Everyone shown a recommendation list in the window, in their group, with what they spent
    from their first list on (all orders, attributed or not)."""
    exposed = (
        select(
            Event.profile_id.label("profile_id"), func.min(Event.occurred_at).label("first_at"),
            func.max(case((_strategy() == HOLDOUT, 1), else_=0)).label("held"),
        )
        .where(Event.site_id == site_id, Event.occurred_at >= since, Event.occurred_at < until,
               Event.type == "rec_impression", Event.profile_id.is_not(None))
        .group_by(Event.profile_id)
    ).subquery()
    spent = and_(Order.profile_id == exposed.c.profile_id, Order.site_id == site_id,
                 Order.occurred_at >= exposed.c.first_at, Order.occurred_at < until)
    rows = db.session.execute(
        select(exposed.c.held, func.count(Order.id), func.coalesce(func.sum(Order.total), 0.0))
        .select_from(exposed).outerjoin(Order, spent).group_by(exposed.c.profile_id, exposed.c.held)
    ).all()
    groups = {"personalized": Group(), "holdout": Group()}
    values: dict[str, list[float]] = {"personalized": [], "holdout": []}
    for held, orders, revenue in rows:
        name = "holdout" if held else "personalized"
        group = groups[name]
        group.visitors += 1
        group.converted += 1 if orders else 0
        group.revenue += float(revenue or 0.0)
        values[name].append(float(revenue or 0.0))
    return groups, values


def live_status(site_id: int, now: datetime | None = None) -> dict:
    """Is the snippet sending events? The newest event received, and how many arrived in the last hour.

    The hour's count reads the (site, time) index: events that happened and arrived in the last hour.
    """
    now = now or utcnow()
    newest = db.session.execute(
        select(Event.received_at, Event.type).where(Event.site_id == site_id).order_by(Event.id.desc()).limit(1)
    ).first()
    hour_ago = now - timedelta(hours=1)
    hour = db.session.scalar(
        select(func.count()).select_from(Event)
        .where(Event.site_id == site_id, Event.occurred_at >= hour_ago, Event.received_at >= hour_ago)
    ) or 0
    last, last_type = newest if newest else (None, None)
    return {"last_event_at": last, "last_event_type": last_type, "events_last_hour": int(hour),
            "seconds_ago": int((now - last).total_seconds()) if last else None}
