"""Entering people: trigger matching, re-entry rules, the control group, and the catch-up.

People enter on the notifications lower layers publish after their commits (new events,
segment membership changes: :mod:`personalize.journeys.listener`), on a date (the
``journeys_triggers`` job, every few minutes), or through the API. Notifications are fast
but not durable: a process that dies between a commit and its notification loses it. So
the same job reads the events and segment changes stored since its cursor (once they are
a minute old) and handles them again; entries are unique per trigger occurrence in the
database (``journey_enrollments.dedupe``), so what the notification did already is not
done twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, func, select

from ..db import db, holding_writer_turn, sqlite_insert_rows
from ..models import Event, Order, Profile, utcnow
from .models import JourneyCursor, JourneyEnrollment, JourneyStep
from .runner import (
    Change,
    Entry,
    Mover,
    SiteZones,
    _bulk_pg,
    column_arrays,
    end_entries,
    insert_steps,
    unnest_insert,
)
from .store import LiveJourney, finish_enrollments, live_journeys, version_flow

log = logging.getLogger(__name__)

ENROLLMENTS = JourneyEnrollment.__table__
STEPS = JourneyStep.__table__
SETTLE_SECONDS = 60  # a stored row older than this is committed (transactions are short)
SCAN = 5000


@dataclass
class Candidate:
    """Someone a trigger fired for."""

    profile_id: int
    occurrence: str  # unique per trigger occurrence (an event id, a segment change, a date, an API key)
    source: str  # what the report shows: "event product_added", "segment vip", "api"…
    data: dict[str, Any] = field(default_factory=dict)


def in_control(journey_id: int, profile_id: int, percent: int) -> bool:
    """Whether a person is in a journey's control group: a fixed point from a hash of the journey and
    the profile, so the same person is always on the same side, whatever process decides."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"personalize-journey-control:{journey_id}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100 < percent


def _dedupe(journey: LiveJourney, candidate: Candidate) -> str:
    if journey.definition["reentry"]["mode"] == "once":
        return str(candidate.profile_id)
    return f"{candidate.profile_id}:{candidate.occurrence}"[:200]


ENTRY_COLUMNS = (
    ("site_id", "integer"), ("journey_id", "integer"), ("profile_id", "bigint"), ("version", "integer"), ("dedupe", "varchar"),
    ("active_profile", "bigint"), ("source", "varchar"), ("control", "boolean"), ("status", "varchar"), ("exit_reason", "varchar"),
    ("data", "json"), ("entered_at", "timestamp"), ("finished_at", "timestamp"), ("goal_at", "timestamp"),
)
_INSERT_ENTRIES_PG = unnest_insert("journey_enrollments", ENTRY_COLUMNS, "ON CONFLICT DO NOTHING RETURNING id, journey_id, profile_id, control")


def _insert_entries(rows: list[dict]) -> list[tuple]:
    """Insert entries, skipping rows a unique key refuses (already entered, already in it); returns
    ``(id, journey_id, profile_id, control)`` of the inserted rows. One statement per chunk on
    either database."""
    if db.session.connection().dialect.name == "postgresql":
        out = []
        for start in range(0, len(rows), 5000):
            out.extend(_bulk_pg(_INSERT_ENTRIES_PG, column_arrays(rows[start : start + 5000], ENTRY_COLUMNS)).fetchall())
        return out
    return sqlite_insert_rows("journey_enrollments", ENTRY_COLUMNS, rows, "ON CONFLICT DO NOTHING RETURNING id, journey_id, profile_id, control", chunk=400)


def enter(journey: LiveJourney, candidates: list[Candidate], now: datetime | None = None, commit: bool = True) -> list[tuple[int, int, bool]]:
    """Enter the candidates a journey allows: the trigger's condition holds, the re-entry rule
    allows it, and they are not in it already. Their first steps are stored with their due
    times. Returns ``(entry id, profile id, control)`` of those who entered."""
    return [(eid, pid, control) for _jid, eid, pid, control in enter_many([(journey, candidates)], now, commit)]


class Decided:
    """Who this process entered, or found could not enter, into which journey lately: a trigger that
    fires again for them is dropped without asking the database (a shopper's tenth product view).

    How long a decision is trusted follows the re-entry rule: ``once`` an hour, a cool-down at most
    an hour and never longer than it; ``every time`` journeys are not remembered (the person may
    leave the journey any moment and be welcome again). The catch-up does not consult this.
    """

    def __init__(self, size: int = 200_000):
        self.size = size
        self.until: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def ttl(journey: LiveJourney) -> float:
        reentry = journey.definition["reentry"]
        if reentry["mode"] == "once":
            return 3600.0
        if reentry["mode"] == "cooldown":
            return min(3600.0, reentry["days"] * 86400.0)
        return 0.0

    def known(self, journey_id: int, profile_id: int, clock: float) -> bool:
        until = self.until.get((journey_id, profile_id))
        return until is not None and until > clock

    def note(self, pairs: list[tuple[int, int, float]]) -> None:
        with self._lock:
            if len(self.until) + len(pairs) > self.size:
                self.until.clear()
            for jid, pid, until in pairs:
                self.until[(jid, pid)] = until


def decided() -> Decided:
    from flask import current_app

    return current_app.extensions.setdefault("personalize.journeys.decided", Decided())


@holding_writer_turn
def enter_many(wanted: list[tuple[LiveJourney, list[Candidate]]], now: datetime | None = None, commit: bool = True,
               remember: bool = False) -> list[tuple[int, int, int, bool]]:
    """:func:`enter` for several journeys in a few statements: one look at recent entries (the
    cool-downs), one insert of entries and one of first steps. With ``remember`` (the listener),
    decisions are kept in this process's :class:`Decided` and repeats are dropped before the
    database. Returns ``(journey id, entry id, profile id, control)`` of those who entered."""
    from ..segments.bulk import matching

    now = now or utcnow()
    clock = time.monotonic()
    memory = decided() if remember else None
    plans: list[tuple[LiveJourney, dict[int, Candidate]]] = []
    for journey, candidates in wanted:
        firsts: dict[int, Candidate] = {}
        for c in candidates:
            if memory is not None and memory.known(journey.id, c.profile_id, clock):
                continue
            firsts.setdefault(c.profile_id, c)  # a person is in a journey once at a time
        condition = journey.definition["trigger"].get("condition")
        if condition is not None and firsts:
            ids, keep = sorted(firsts), set()
            p = Profile.__table__
            for start in range(0, len(ids), 500):
                keep.update(db.session.scalars(matching(journey.site_id, condition, now).where(p.c.id.in_(ids[start : start + 500]))))
            firsts = {pid: c for pid, c in firsts.items() if pid in keep}
        if firsts:
            plans.append((journey, firsts))
    cooling = {j.id: now - timedelta(days=j.definition["reentry"]["days"]) for j, _f in plans if j.definition["reentry"]["mode"] == "cooldown"}
    if cooling:
        pids = sorted({pid for j, firsts in plans if j.id in cooling for pid in firsts})
        recent: set[tuple[int, int]] = set()
        for start in range(0, len(pids), 500):
            for jid, pid, at in db.session.execute(
                select(ENROLLMENTS.c.journey_id, ENROLLMENTS.c.profile_id, ENROLLMENTS.c.entered_at).where(
                    ENROLLMENTS.c.journey_id.in_(list(cooling)), ENROLLMENTS.c.profile_id.in_(pids[start : start + 500]),
                    ENROLLMENTS.c.entered_at > min(cooling.values()))
            ):
                if at > cooling[jid]:
                    recent.add((jid, pid))
        plans = [(j, {pid: c for pid, c in firsts.items() if (j.id, pid) not in recent}) for j, firsts in plans]
        if memory is not None:
            memory.note([(jid, pid, clock + Decided.ttl(next(j for j, _f in plans if j.id == jid))) for jid, pid in recent])
    rows = [{
        "site_id": journey.site_id, "journey_id": journey.id, "profile_id": pid, "version": journey.version,
        "dedupe": _dedupe(journey, c), "active_profile": pid, "source": c.source[:120],
        "control": in_control(journey.id, pid, journey.definition["control"]), "status": "active", "exit_reason": "",
        "data": c.data, "entered_at": now, "finished_at": None, "goal_at": None,
    } for journey, firsts in plans for pid, c in firsts.items()]
    if not rows:
        return []
    try:
        entered = _insert_entries(rows)
        by_journey: dict[int, list] = defaultdict(list)
        for eid, jid, pid, control in entered:
            by_journey[jid].append((eid, pid, control))
        steps: list[dict] = []
        ends: list = []
        for journey, firsts in plans:
            if by_journey.get(journey.id):
                first_steps(journey, [(eid, pid, control, firsts[pid].data) for eid, pid, control in by_journey[journey.id]], now, steps, ends)
        insert_steps(steps)
        end_entries(ends, now)
        if commit:
            db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if memory is not None:
        memory.note([(j.id, pid, clock + Decided.ttl(j)) for j, firsts in plans for pid in firsts if Decided.ttl(j)])
    return [(jid, eid, pid, bool(control)) for eid, jid, pid, control in entered]


def first_steps(journey: LiveJourney, entered: list[tuple[int, int, bool, dict]], now: datetime, steps: list[dict], ends: list) -> None:
    """The first step rows of new entries (the steps that take no time are run through), added to
    ``steps``; entries that end at once (no step, an exit) added to ``ends``."""
    definition, flow = version_flow(journey.id, journey.version)
    mover = Mover(now, None, now, SiteZones())
    plans = []
    for eid, pid, control, data in entered:
        entry = Entry(eid, journey.site_id, journey.id, pid, journey.version, bool(control), now, data or {}, "active", definition, flow)
        plans.append((Change(None), entry, flow.first))  # type: ignore[arg-type]
    mover.advance(plans, claim_actions=False)
    steps.extend(row for change, _e, _s in plans for row in change.inserts)
    ends.extend(end for change, _e, _s in plans for end in change.ends)


# ---------------------------------------------------------------- matching what happened


class ProductFacts(NamedTuple):
    category: str
    price: float | None


def product_facts(site_id: int, product_ids: list[str]) -> dict[str, ProductFacts]:
    """What trigger filters read of products (category, price), by id, in one light query per 500."""
    from ..models import Product

    ids = list(dict.fromkeys(product_ids))
    out: dict[str, ProductFacts] = {}
    for start in range(0, len(ids), 500):
        for pid, category, price in db.session.execute(
            select(Product.external_id, Product.category, Product.price).where(Product.site_id == site_id, Product.external_id.in_(ids[start : start + 500]))
        ):
            out[pid] = ProductFacts(category or "", price)
    return out


PRODUCT_FIELDS = frozenset({"product_id", "product.category", "product.price"})  # what a trigger filter reads of the product alone


def _where_holds(cond: dict, event, product) -> bool:
    name, op, target = cond["field"], cond["op"], cond.get("value")
    if name == "product_id":
        value = event.product_id or None
    elif name == "product.category":
        value = product.category if product is not None else None
    elif name == "product.price":
        value = product.price if product is not None else None
    else:
        value = (event.properties or {}).get(name[11:])
    if op == "exists":
        return value not in (None, "")
    if value is None:
        return False
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if op in ("gt", "gte", "lt", "lte"):
        if not numeric:
            return False
        if op == "gt":
            return value > target
        if op == "gte":
            return value >= target
        return value < target if op == "lt" else value <= target
    if op == "contains":
        return isinstance(value, str) and target in value
    same = (lambda a, b: type(a) is type(b) and a == b) if not numeric else (lambda a, b: isinstance(b, int | float) and not isinstance(b, bool) and a == b)
    if op == "in":
        return any(same(value, t) for t in target)
    return same(value, target) if op == "eq" else not same(value, target)


def event_data(event) -> dict[str, Any]:
    when = event.occurred_at.isoformat() + "Z" if isinstance(event.occurred_at, datetime) else str(event.occurred_at)
    data = {"event": event.type, "event_id": event.event_id, "occurred_at": when, "properties": dict(event.properties or {})}
    if event.product_id:
        data["product_id"] = event.product_id
    return data


@holding_writer_turn
def on_events(site_id: int, events: list, now: datetime | None = None, received: dict[str, datetime] | None = None,
              remember: bool = False) -> int:
    """Handle stored events (``personalize.records.Event``): enter people, end entries whose goal
    was reached, answer waits for events. Returns the number of entries made. Commits.

    ``received`` gives the time each event (by id) was stored, when it is not now (the
    catch-up): goals and waits count an event stored after the person reached the step,
    whatever the clock of the browser that sent it said. ``remember`` (the listener, not the
    catch-up) drops repeated triggers this process decided lately (:class:`Decided`).
    """
    now = now or utcnow()
    received = received or {}
    live = live_journeys(site_id)
    if not live.journeys:
        return 0
    entered = 0
    wanted = [e for e in events if e.type in live.by_event]
    if wanted:
        needs_product = any(w["field"].startswith("product.") for js in live.by_event.values() for j in js for w in j.trigger.get("where", ()))
        products = product_facts(site_id, [e.product_id for e in wanted if e.product_id]) if needs_product else {}
        batch = []
        memory, clock = (decided(), time.monotonic()) if remember else (None, 0.0)
        data: dict[str, dict] = {}
        by_type: dict[str, list] = defaultdict(list)
        for e in wanted:
            if e.profile_id:
                by_type[e.type].append(e)
        for journey in {j.id: j for e in wanted for j in live.by_event[e.type]}.values():
            where = journey.trigger.get("where") or []
            # filters on the product alone hold or not for every event of that product: asked once per product
            by_product: dict[str, bool] | None = {} if all(w["field"] in PRODUCT_FIELDS for w in where) else None
            found: dict[int, Candidate] = {}  # the first event of each person counts: they enter once at a time
            for e in by_type[journey.trigger["event"]]:
                if e.profile_id in found or (memory is not None and memory.known(journey.id, e.profile_id, clock)):
                    continue
                if where:
                    holds = None if by_product is None else by_product.get(e.product_id)
                    if holds is None:
                        holds = all(_where_holds(w, e, products.get(e.product_id)) for w in where)
                        if by_product is not None:
                            by_product[e.product_id] = holds
                    if not holds:
                        continue
                if e.event_id not in data:
                    data[e.event_id] = event_data(e)
                found[e.profile_id] = Candidate(e.profile_id, f"e:{e.event_id}", f"event {e.type}", data[e.event_id])
            if found:
                batch.append((journey, list(found.values())))
        entered += len(enter_many(batch, now, commit=False, remember=remember))
    goal_events = [e for e in events if e.type in live.goal_events and e.profile_id]
    if goal_events:
        reach_goals(site_id, [(e.profile_id, e.type, received.get(e.event_id, now), e.event_id) for e in goal_events], now)
    awaited = [e for e in events if e.type in live.awaited and e.profile_id]
    if awaited:
        answer_waits(site_id, [(e.profile_id, e.type, e.event_id, received.get(e.event_id, now)) for e in awaited], now)
    db.session.commit()
    return entered


def reach_goals(site_id: int, hits: list[tuple[int, str, datetime, str]], now: datetime) -> int:
    """End the active entries whose goal these ``(profile, event type, time stored, event id)`` reach
    (the event that made an entry never counts as its goal: an order entering a post-purchase
    journey is not the order it hopes for). No commit."""
    live = live_journeys(site_id)
    goal_of = {
        j.id: ("order_completed" if j.definition["goal"]["type"] == "order" else j.definition["goal"].get("event"))
        for j in live.journeys if j.definition["exit"]["on_goal"]
    }
    if not goal_of:
        return 0
    pids = sorted({p for p, _t, _w, _i in hits})
    rows = db.session.execute(
        select(ENROLLMENTS.c.id, ENROLLMENTS.c.journey_id, ENROLLMENTS.c.profile_id, ENROLLMENTS.c.entered_at, ENROLLMENTS.c.data)
        .where(ENROLLMENTS.c.profile_id.in_(pids), ENROLLMENTS.c.status == "active", ENROLLMENTS.c.journey_id.in_(list(goal_of)))
    ).all()
    ended = 0
    for eid, jid, pid, entered_at, data in rows:
        made_by = (data or {}).get("event_id")
        times = [w for p, t, w, i in hits if p == pid and t == goal_of[jid] and w >= entered_at and i != made_by]
        if times:
            ended += len(finish_enrollments([eid], "goal", "reached the goal", now, goal_at=min(times)))
    return ended


def answer_waits(site_id: int, hits: list[tuple[int, str, str, datetime]], now: datetime) -> int:
    """Make wait-for-event steps waiting for these ``(profile, event type, event id, stored at)`` due
    now (an event stored before the person reached the step does not count). No commit."""
    pids = sorted({p for p, _t, _i, _w in hits})
    rows = db.session.execute(
        select(STEPS.c.id, STEPS.c.journey_id, STEPS.c.step_id, STEPS.c.profile_id, ENROLLMENTS.c.version, STEPS.c.entered_at)
        .join(ENROLLMENTS, ENROLLMENTS.c.id == STEPS.c.enrollment_id)
        .where(STEPS.c.profile_id.in_(pids), STEPS.c.kind == "wait_event", STEPS.c.state == "due", STEPS.c.claim.is_(None))
    ).all()
    answered = 0
    for sid, jid, step_id, pid, version, reached in rows:
        try:
            awaited = version_flow(jid, version)[1].steps[step_id]["event"]
        except (LookupError, KeyError):
            continue
        got = [i for p, t, i, at in hits if p == pid and t == awaited and at >= reached]
        if got:
            answered += db.session.execute(
                STEPS.update().where(STEPS.c.id == sid, STEPS.c.state == "due", STEPS.c.claim.is_(None)).values(due_at=now, signal=got[0][:64])
            ).rowcount
    return answered


@holding_writer_turn
def on_segment_changes(site_id: int, changes: list[tuple[int, str, bool, datetime]], now: datetime | None = None) -> int:
    """Handle ``(profile, segment key, entered, when)`` changes: enter people, and end the entries of
    those who left a journey's trigger segment when the journey says so. Commits."""
    now = now or utcnow()
    live = live_journeys(site_id)
    entered = 0
    for key in {k for _p, k, _e, _w in changes if k in live.by_segment}:
        for journey in live.by_segment[key]:
            wants_entered = journey.trigger["type"] == "segment_entered"
            found = [
                Candidate(pid, f"s:{key}:{'in' if entered_ else 'out'}:{when.isoformat()}", f"segment {key} {'entered' if entered_ else 'left'}",
                          {"segment": key, "change": "entered" if entered_ else "left"})
                for pid, k, entered_, when in changes if k == key and entered_ == wants_entered
            ]
            if found:
                entered += len(enter(journey, found, now))
            if journey.definition["exit"]["on_segment_exit"]:
                gone = sorted({pid for pid, k, entered_, _w in changes if k == key and not entered_})
                if gone:
                    ids = list(db.session.scalars(select(ENROLLMENTS.c.id).where(
                        ENROLLMENTS.c.journey_id == journey.id, ENROLLMENTS.c.profile_id.in_(gone), ENROLLMENTS.c.status == "active")))
                    finish_enrollments(ids, "exited", "left the trigger segment", now)
    db.session.commit()
    return entered


# ---------------------------------------------------------------- the catch-up and dates


def _cursor(name: str, start: Any) -> JourneyCursor:
    row = db.session.get(JourneyCursor, name)
    if row is None:
        row = JourneyCursor(name=name, position=int(start() or 0), updated_at=utcnow())
        db.session.add(row)
        db.session.commit()
    return row


def _sites_with_live_journeys() -> list[int]:
    from .models import Journey

    return sorted(set(db.session.scalars(select(Journey.site_id).where(Journey.status == "active", Journey.version > 0))))


def _settled_bound(table, time_column, after: int, edge: datetime) -> int:
    """The highest id after ``after`` whose rows are all older than ``edge`` (ids follow time closely)."""
    bound = after
    for row_id, at in db.session.execute(select(table.c.id, time_column).where(table.c.id > after).order_by(table.c.id).limit(SCAN)):
        if at is not None and at > edge:
            break
        bound = row_id
    return bound


def _catch_up(name: str, table, time_column, now: datetime, handle) -> int:
    """Walk ``table`` past the cursor ``name`` one settled window at a time: ``handle(after, bound, sites)``
    handles the rows with ``after < id <= bound`` for the sites that have a live journey and says how many
    it handled; the cursor moves past the window in the same commit."""
    cursor = _cursor(name, lambda: db.session.scalar(select(func.max(table.c.id))))
    sites = _sites_with_live_journeys()
    handled = 0
    while True:
        bound = _settled_bound(table, time_column, cursor.position, now - timedelta(seconds=SETTLE_SECONDS))
        if bound <= cursor.position:
            break
        if sites:
            handled += handle(cursor.position, bound, sites)
        cursor.position, cursor.updated_at = bound, now
        db.session.commit()
    return handled


def catch_up_events(now: datetime | None = None) -> int:
    """Handle the events stored since the cursor that are a minute old: whatever their
    notification did not (a process that died) is done now, and nothing twice."""
    from ..records import Event as EventRecord

    now = now or utcnow()
    e = Event.__table__

    def handle(after: int, bound: int, sites: list[int]) -> int:
        rows = db.session.execute(
            select(e.c.site_id, e.c.event_id, e.c.type, e.c.visitor, e.c.profile_id, e.c.occurred_at, e.c.product_id, e.c.properties,
                   e.c.received_at)
            .where(e.c.id > after, e.c.id <= bound, e.c.site_id.in_(sites), e.c.profile_id.is_not(None)).order_by(e.c.id)
        ).all()
        by_site: dict[int, list] = defaultdict(list)
        received: dict[str, datetime] = {}
        for site_id, event_id, etype, visitor, pid, at, product, props, got in rows:
            by_site[site_id].append(EventRecord(site_id, event_id, etype, visitor, pid, at, product or "", properties=props or {}))
            received[event_id] = got
        return sum(on_events(site_id, events, now, received) for site_id, events in by_site.items())

    return _catch_up("events", e, e.c.received_at, now, handle)


def catch_up_segments(now: datetime | None = None) -> int:
    """The catch-up of :func:`catch_up_events` for segment membership changes."""
    from ..segments.models import Segment, SegmentChange

    now = now or utcnow()
    c = SegmentChange.__table__

    def handle(after: int, bound: int, sites: list[int]) -> int:
        rows = db.session.execute(
            select(c.c.site_id, c.c.profile_id, Segment.key, c.c.change, c.c.at).join(Segment, Segment.id == c.c.segment_id)
            .where(c.c.id > after, c.c.id <= bound, c.c.site_id.in_(sites)).order_by(c.c.id)
        ).all()
        by_site: dict[int, list] = defaultdict(list)
        for site_id, pid, key, change, at in rows:
            by_site[site_id].append((pid, key, change == "entered", at))
        return sum(on_segment_changes(site_id, changes, now) for site_id, changes in by_site.items())

    return _catch_up("segment_changes", c, c.c.at, now, handle)


def date_candidates(journey: LiveJourney, day: date, site_zone) -> list[Candidate]:
    """Who a date trigger fires for on ``day`` (the site's local date)."""
    from ..profiles.attributes import epoch_seconds
    from ..profiles.models import ProfileAttribute
    from .pressure import to_utc

    t = journey.trigger
    target = day - timedelta(days=t["offset_days"])  # the date the field must hold
    start = to_utc(datetime.combine(target, datetime.min.time(), tzinfo=site_zone))
    end = to_utc(datetime.combine(target + timedelta(days=1), datetime.min.time(), tzinfo=site_zone))
    name = t["field"]
    if name.startswith("attributes."):
        a = ProfileAttribute.__table__
        q = select(a.c.profile_id).where(a.c.site_id == journey.site_id, a.c.name == name[11:], a.c.vtype == "s", a.c.value_num.is_not(None))
        if t["yearly"]:
            q = q.where(func.substr(a.c.value_text, 6, 5) == target.strftime("%m-%d"))
        else:
            q = q.where(a.c.value_num >= epoch_seconds(start), a.c.value_num < epoch_seconds(end))
        pids = list(db.session.scalars(q))
    elif name == "profile.created_at":
        p = Profile.__table__
        pids = list(db.session.scalars(select(p.c.id).where(p.c.site_id == journey.site_id, p.c.created_at >= start, p.c.created_at < end)))
    else:
        o = Order.__table__
        agg = func.max(o.c.occurred_at) if name == "orders.last_at" else func.min(o.c.occurred_at)
        pids = list(db.session.scalars(
            select(o.c.profile_id).where(o.c.site_id == journey.site_id, o.c.profile_id.is_not(None)).group_by(o.c.profile_id)
            .having(and_(agg >= start, agg < end))
        ))
    return [Candidate(pid, f"d:{day.isoformat()}", f"date {name}", {"date": day.isoformat(), "field": name}) for pid in pids]


def run_date_triggers(now: datetime | None = None) -> int:
    """Enter the people whose date has come: today once the trigger's local time has passed, and
    yesterday's too (a server that was down does not skip a day). Commits."""
    from .email import get_settings
    from .models import Journey
    from .pressure import _clock, local, zone

    now = now or utcnow()
    entered = 0
    sites = sorted(set(db.session.scalars(select(Journey.site_id).where(Journey.status == "active", Journey.version > 0))))
    for site_id in sites:
        journeys = [j for j in live_journeys(site_id).journeys if j.trigger["type"] == "date"]
        if not journeys:
            continue
        tz = zone(get_settings(site_id).timezone)
        here = local(now, tz)
        for journey in journeys:
            days = [here.date() - timedelta(days=1)]
            if here.time() >= _clock(journey.trigger["at"]):
                days.append(here.date())
            for day in days:
                found = date_candidates(journey, day, tz)
                for start in range(0, len(found), 1000):
                    entered += len(enter(journey, found[start : start + 1000], now))
    return entered


def run_triggers(now: datetime | None = None) -> dict[str, int]:
    """The ``journeys_triggers`` job: the catch-up of events and segment changes, then dates."""
    return {"events": catch_up_events(now), "segments": catch_up_segments(now), "dates": run_date_triggers(now)}
