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

from sqlalchemy import select

from ..db import db
from ..models import Event, Order, utcnow
from .holdout import HOLDOUT
from .stats import Comparison, compare_means, compare_rates

UNKNOWN = "unknown"
LOOKUP_CHUNK = 500


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


def _group_of(strategy: str) -> str:
    return "holdout" if strategy == HOLDOUT else "personalized"


def _strategy(properties) -> str:
    value = (properties or {}).get("strategy") if isinstance(properties, dict) else None
    return str(value) if value else UNKNOWN


def site_report(site_id: int, days: int = 30, today: date | None = None) -> Report:
    """Everything the dashboard shows for the ``days`` days up to and including ``today`` (UTC)."""
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
    meta: dict[str, tuple[str, str]] = {}  # rec_id -> (slot, strategy)
    first_seen: dict[int, tuple[datetime, str]] = {}  # profile -> (first exposure, group)

    in_window = (Event.site_id == site_id, Event.occurred_at >= since, Event.occurred_at < until)

    def count(tally_name: str, rec_id: str | None, when: datetime, amount: float = 0.0) -> None:
        slot, strategy = meta.get(rec_id or "", (UNKNOWN, UNKNOWN))
        group = _group_of(strategy)
        for tally in (by_day[when.date()], by_day_group[group][when.date()], by_slot[slot], by_strategy[strategy], total):
            setattr(tally, tally_name, getattr(tally, tally_name) + 1)
            if tally_name == "orders":
                tally.revenue += amount

    impressions = db.session.execute(
        select(Event.rec_id, Event.slot, Event.properties, Event.profile_id, Event.occurred_at)
        .where(*in_window, Event.type == "rec_impression").order_by(Event.occurred_at)
    ).all()
    for rec_id, slot, props, profile_id, when in impressions:
        strategy = _strategy(props)
        meta.setdefault(rec_id or "", (slot or UNKNOWN, strategy))
        if profile_id is not None and profile_id not in first_seen:
            first_seen[profile_id] = (when, _group_of(strategy))
    clicks = db.session.execute(
        select(Event.rec_id, Event.slot, Event.properties, Event.occurred_at)
        .where(*in_window, Event.type == "rec_clicked")
    ).all()
    for rec_id, slot, props, _when in clicks:
        meta.setdefault(rec_id or "", (slot or UNKNOWN, _strategy(props)))
    carts = db.session.execute(
        select(Event.rec_id, Event.occurred_at).where(*in_window, Event.type == "product_added", Event.rec_id.is_not(None))
    ).all()
    orders = db.session.execute(
        select(Order.rec_id, Order.total, Order.profile_id, Order.occurred_at, Order.currency)
        .where(Order.site_id == site_id, Order.occurred_at >= since, Order.occurred_at < until)
    ).all()
    # lists shown before the window whose clicks, carts or orders fall inside it
    _lookup_older(site_id, {r for r, *_ in carts} | {o[0] for o in orders if o[0]}, meta)

    for rec_id, *_rest, when in impressions:
        count("impressions", rec_id, when)
    for rec_id, _slot, _props, when in clicks:
        count("clicks", rec_id, when)
    for rec_id, when in carts:
        count("carts", rec_id, when)
    currencies: dict[str, int] = defaultdict(int)
    groups = {"personalized": Group(), "holdout": Group()}
    outcome: dict[int, float] = {}
    for rec_id, amount, profile_id, when, currency in orders:
        if rec_id:
            count("orders", rec_id, when, amount or 0.0)
        if currency:
            currencies[currency] += 1
        seen = first_seen.get(profile_id) if profile_id is not None else None
        if seen is not None and when >= seen[0]:
            outcome[profile_id] = outcome.get(profile_id, 0.0) + (amount or 0.0)

    values: dict[str, list[float]] = {"personalized": [], "holdout": []}
    converted = {"personalized": 0, "holdout": 0}
    for profile_id, (_when, group) in first_seen.items():
        spent = outcome.get(profile_id)
        values[group].append(spent or 0.0)
        if spent is not None:
            converted[group] += 1
    for name, group in groups.items():
        group.visitors = len(values[name])
        group.converted = converted[name]
        group.revenue = sum(values[name])

    return Report(
        start=start, end=today, days=day_list, by_day=by_day, by_day_group=by_day_group,
        by_slot=dict(sorted(by_slot.items())), by_strategy=dict(sorted(by_strategy.items())), total=total,
        groups=groups,
        conversion=compare_rates("conversion", converted["personalized"], len(values["personalized"]), converted["holdout"], len(values["holdout"])),
        revenue_per_visitor=compare_means("revenue_per_visitor", values["personalized"], values["holdout"]),
        currency=max(currencies, key=currencies.get) if currencies else "",
    )


def _lookup_older(site_id: int, rec_ids: set[str], meta: dict[str, tuple[str, str]]) -> None:
    missing = sorted(r for r in rec_ids if r and r not in meta)
    for start in range(0, len(missing), LOOKUP_CHUNK):
        chunk = missing[start : start + LOOKUP_CHUNK]
        rows = db.session.execute(
            select(Event.rec_id, Event.slot, Event.properties).where(
                Event.site_id == site_id, Event.rec_id.in_(chunk), Event.type.in_(("rec_impression", "rec_clicked"))
            )
        ).all()
        for rec_id, slot, props in rows:
            meta.setdefault(rec_id, (slot or UNKNOWN, _strategy(props)))


def live_status(site_id: int, now: datetime | None = None) -> dict:
    """Is the snippet sending events? The newest event and the count of the last hour."""
    from sqlalchemy import func

    now = now or utcnow()
    last = db.session.scalar(select(func.max(Event.received_at)).where(Event.site_id == site_id))
    hour = db.session.scalar(
        select(func.count()).select_from(Event).where(Event.site_id == site_id, Event.received_at >= now - timedelta(hours=1))
    ) or 0
    last_type = None
    if last is not None:
        last_type = db.session.scalar(
            select(Event.type).where(Event.site_id == site_id, Event.received_at == last).limit(1)
        )
    return {"last_event_at": last, "last_event_type": last_type, "events_last_hour": int(hour),
            "seconds_ago": int((now - last).total_seconds()) if last else None}
