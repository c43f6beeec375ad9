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

from sqlalchemy import and_, delete, func, or_, select

from ..db import db, holding_writer_turn, sqlite_insert_rows, sqlite_time, writer_turn
from ..models import Event, Order, Profile, utcnow
from .models import Journey, JourneyCursor, JourneyEnrollment, JourneyInboxMark, JourneyStep
from .runner import (
    Change,
    Entry,
    Mover,
    SiteZones,
    _bulk_pg,
    column_arrays,
    end_entries,
    fixed_due,
    insert_steps,
    step_row,
    unnest_insert,
)
from .store import RECHECK_SECONDS, LiveJourney, finish_enrollments, live_journeys, version_flow

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


ENTRY_COLUMNS = (
    ("site_id", "integer"), ("journey_id", "integer"), ("profile_id", "bigint"), ("version", "integer"), ("dedupe", "varchar"),
    ("active_profile", "bigint"), ("source", "varchar"), ("control", "boolean"), ("status", "varchar"), ("exit_reason", "varchar"),
    ("data", "json"), ("entered_at", "timestamp"), ("finished_at", "timestamp"), ("goal_at", "timestamp"),
)
_INSERT_ENTRIES_PG = unnest_insert("journey_enrollments", ENTRY_COLUMNS, "ON CONFLICT DO NOTHING RETURNING id, journey_id, profile_id, control")


def _insert_entries(rows: list[tuple], stored: bool = False) -> list[tuple]:
    """Insert entries (tuples in the order of :data:`ENTRY_COLUMNS`), skipping rows a unique key refuses (already entered, already in it); returns
    ``(id, journey_id, profile_id, control)`` of the inserted rows. One statement per chunk on
    either database. ``stored``: on SQLite, the rows' JSON and timestamps are texts already."""
    if db.session.connection().dialect.name == "postgresql":
        out = []
        for start in range(0, len(rows), 5000):
            out.extend(_bulk_pg(_INSERT_ENTRIES_PG, column_arrays(rows[start : start + 5000], ENTRY_COLUMNS)).fetchall())
        return out
    return sqlite_insert_rows("journey_enrollments", ENTRY_COLUMNS, rows, "ON CONFLICT DO NOTHING RETURNING id, journey_id, profile_id, control",
                              chunk=400, stored=stored)


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
        self.until: dict[int, dict[int, float]] = {}  # journey id -> profile id -> trusted until (monotonic clock)
        self.count = 0
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
        until = self.until.get(journey_id, _NOTHING).get(profile_id)
        return until is not None and until > clock

    def note(self, journey_id: int, profile_ids, until: float) -> None:
        """These people of the journey were decided, trusted until ``until``."""
        with self._lock:
            if self.count + len(profile_ids) > self.size:
                self.until, self.count = {}, 0
            mine = self.until.get(journey_id)
            if mine is None:
                mine = self.until[journey_id] = {}
            before = len(mine)
            mine.update(dict.fromkeys(profile_ids, until))
            self.count += len(mine) - before


_NOTHING: dict = {}


def decided() -> Decided:
    from flask import current_app

    return current_app.extensions.setdefault("personalize.journeys.decided", Decided())


def enter_many(wanted: list[tuple[LiveJourney, list[Candidate]]], now: datetime | None = None, commit: bool = True,
               remember: bool = False) -> list[tuple[int, int, int, bool]]:
    """:func:`enter` for several journeys in a few statements: one look at recent entries (the
    cool-downs), one insert of entries and one of first steps. With ``remember`` (the listener),
    decisions are kept in this process's :class:`Decided` and repeats are dropped before the
    database. Returns ``(journey id, entry id, profile id, control)`` of those who entered.

    The deciding (:func:`plan_entries`: reads only) runs before the writer turn is taken; only
    the inserts (:func:`write_entries`) hold it."""
    now = now or utcnow()
    plans = plan_entries(wanted, now, remember)
    if not plans:
        return []
    prepared = prepare_entries(plans, now)
    with writer_turn("journeys"):
        try:
            entered = write_entries(prepared, now)
            if commit:
                db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    if remember:
        remember_entries(plans)
    return entered


Plan = tuple[LiveJourney, dict[int, Candidate]]  # a journey and who is to enter it (by profile: their trigger)


def plan_entries(wanted: list[tuple[LiveJourney, list[Candidate]]], now: datetime, remember: bool = False) -> list[Plan]:
    """Who of the candidates may enter which journey: the first candidate of each person, the
    trigger's condition holds, the re-entry rule allows it (a cool-down: no entry lately). Reads
    only, so it runs outside the SQLite writer turn; the inserts' unique keys (one active entry
    of a person per journey, one per trigger occurrence) still refuse whatever became a repeat
    since. With ``remember``, drops what this process decided lately (:class:`Decided`)."""
    from ..segments.bulk import matching

    clock = time.monotonic()
    memory = decided() if remember else None
    plans: list[Plan] = []
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
        if recent:
            plans = [(j, {pid: c for pid, c in firsts.items() if (j.id, pid) not in recent}) for j, firsts in plans]
            if memory is not None:
                cooled: dict[int, list[int]] = defaultdict(list)
                for jid, pid in recent:
                    cooled[jid].append(pid)
                for j, _f in plans:
                    ttl = Decided.ttl(j)
                    if ttl and j.id in cooled:
                        memory.note(j.id, cooled[j.id], clock + ttl)
    return [(j, firsts) for j, firsts in plans if firsts]


def remember_entries(plans: list[Plan]) -> None:
    """Once :func:`write_entries`' transaction is committed: this process decided these people (:class:`Decided`)."""
    clock = time.monotonic()
    memory = decided()
    for j, firsts in plans:
        ttl = Decided.ttl(j)
        if ttl:
            memory.note(j.id, list(firsts), clock + ttl)


class Prepared(NamedTuple):
    """The rows of the entries :func:`plan_entries` decided, made before the writer turn is taken
    (:func:`prepare_entries`), so that holding the turn costs only the inserts."""

    plans: list[Plan]
    rows: list[tuple]  # in the order of ENTRY_COLUMNS
    stored: bool  # on SQLite: JSON and timestamps already as the texts SQLite stores
    now: datetime


def prepare_entries(plans: list[Plan], now: datetime) -> Prepared:
    """The entry rows of ``plans``: their dedupe keys, their side of the control group (a hash), and
    on SQLite the trigger's data as JSON text (once per trigger occurrence: one event entering a
    person into several journeys shares it) and the times as text. Reads and writes nothing."""
    import json

    stored = db.session.get_bind().dialect.name != "postgresql"
    at = sqlite_time(now) if stored else now
    texts: dict[int, str] = {}  # id of a trigger's data (alive in the plans) -> its JSON text
    rows = []
    for journey, firsts in plans:
        jid, site_id, version, percent = journey.id, journey.site_id, journey.version, journey.definition["control"]
        once = journey.definition["reentry"]["mode"] == "once"
        for pid, c in firsts.items():
            data = c.data
            if stored:
                text = texts.get(id(data))
                if text is None:
                    text = texts[id(data)] = json.dumps(data)
                data = text
            rows.append((site_id, jid, pid, version, str(pid) if once else f"{pid}:{c.occurrence}"[:200], pid, c.source[:120],
                         in_control(jid, pid, percent), "active", "", data, at, None, None))
    return Prepared(plans, rows, stored, now)


def write_entries(plans: list[Plan] | Prepared, now: datetime) -> list[tuple[int, int, int, bool]]:
    """Insert the entries :func:`plan_entries` decided (their rows made by :func:`prepare_entries`,
    best before the writer turn is taken) and their first steps, in the caller's transaction (no commit; on SQLite the
    caller holds the writer turn). Rows a unique key refuses are skipped. Returns ``(journey id,
    entry id, profile id, control)`` of those who entered."""
    prepared = plans if isinstance(plans, Prepared) else prepare_entries(plans, now)
    if not prepared.rows:
        return []
    entered = _insert_entries(prepared.rows, prepared.stored)
    by_journey: dict[int, list] = defaultdict(list)
    for eid, jid, pid, control in entered:
        by_journey[jid].append((eid, pid, control))
    steps: list[tuple] = []
    ready: list[tuple] = []  # first steps made from a journey's template, already as stored
    ends: list = []
    for journey, firsts in prepared.plans:
        mine = by_journey.get(journey.id)
        if not mine:
            continue
        template = first_step_template(journey, now, prepared.stored)
        if template is not None:
            step, due, at, detail = template
            ready.extend(step_row(journey.site_id, journey.id, eid, pid, step, due, at, detail=detail) for eid, pid, _control in mine)
        else:
            first_steps(journey, [(eid, pid, control, firsts[pid].data) for eid, pid, control in mine], now, steps, ends)
    insert_steps(ready, stored=prepared.stored)
    insert_steps(steps)
    end_entries(ends, now)
    return [(jid, eid, pid, bool(control)) for eid, jid, pid, control in entered]


def first_step_template(journey: LiveJourney, now: datetime, stored: bool) -> tuple | None:
    """What every new entry of the journey's version stores as its first step, when that is the
    same for everyone but the entry (:func:`~personalize.journeys.runner.fixed_due`: a wait of a
    duration, a wait for an event, an action; due then, unclaimed, as :class:`Mover` stores them):
    ``(step, due, now, detail)``, times and detail as stored on SQLite when ``stored``. None when
    the first step depends on the person (a branch, a split, a wait until a time of their day) or
    ends the entry: :func:`first_steps` works those out."""
    _definition, flow = version_flow(journey.id, journey.version)
    step = flow.steps.get(flow.first) if flow.first is not None else None
    due = fixed_due(step, now) if step is not None else None
    if due is None:
        return None
    if stored:
        return step, sqlite_time(due), sqlite_time(now), "{}"
    return step, due, now, {}


def first_steps(journey: LiveJourney, entered: list[tuple[int, int, bool, dict]], now: datetime, steps: list[tuple], ends: list) -> None:
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


class Where:
    """A trigger's ``where`` filters compiled into tests (:func:`compile_where`)."""

    __slots__ = ("tests", "product_only", "reads_product")

    def __init__(self, tests: list, product_only: bool, reads_product: bool):
        self.tests, self.product_only, self.reads_product = tests, product_only, reads_product

    def holds(self, event, product) -> bool:
        return all(test(event, product) for test in self.tests)


def _getter(name: str):
    if name == "product_id":
        return lambda e, p: e.product_id or None
    if name == "product.category":
        return lambda e, p: p.category if p is not None else None
    if name == "product.price":
        return lambda e, p: p.price if p is not None else None
    key = name[11:]
    return lambda e, p: (e.properties or {}).get(key)


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _compile(cond: dict):
    """One condition as ``test(event, product) -> bool``, the field and operator looked up once
    instead of per event. The rule: ``exists`` holds for a value that is neither
    missing nor empty; the others need a value; ``gt``/``gte``/``lt``/``lte`` need a number;
    ``contains`` a string; ``eq``/``neq``/``in`` compare numbers by value and anything else by
    type and value (``True`` is not 1)."""
    get, op, target = _getter(cond["field"]), cond["op"], cond.get("value")
    if op == "exists":
        return lambda e, p: get(e, p) not in (None, "")
    if op in ("gt", "gte", "lt", "lte"):
        compare = {"gt": lambda v: v > target, "gte": lambda v: v >= target, "lt": lambda v: v < target, "lte": lambda v: v <= target}[op]

        def ordered(e, p):
            v = get(e, p)
            return v is not None and _number(v) and compare(v)

        return ordered
    if op == "contains":
        def contains(e, p):
            v = get(e, p)
            return isinstance(v, str) and target in v

        return contains

    def same(v, t) -> bool:
        if _number(v):
            return _number(t) and v == t
        return type(v) is type(t) and v == t

    if op == "in":
        def among(e, p):
            v = get(e, p)
            return v is not None and any(same(v, t) for t in target)

        return among
    if op == "eq":
        def equal(e, p):
            v = get(e, p)
            return v is not None and same(v, target)

        return equal

    def differs(e, p):
        v = get(e, p)
        return v is not None and not same(v, target)

    return differs


def compile_filters(where: list[dict]) -> Where:
    """A trigger's ``where`` filters (all must hold) as one :class:`Where`."""
    return Where([_compile(w) for w in where], all(w["field"] in PRODUCT_FIELDS for w in where),
                 any(w["field"].startswith("product.") for w in where))


def compile_where(journey: LiveJourney) -> Where:
    """The journey's trigger filters as tests, compiled once per live journey (a version never changes)."""
    compiled = journey.__dict__.get("_where")
    if compiled is None:
        compiled = journey.__dict__["_where"] = compile_filters(journey.trigger.get("where") or [])
    return compiled


class ProductVerdicts:
    """Per process: whether a journey version's filters on the product alone hold for a product, decided
    once per product, and the product facts they read. Everything a site's entry holds is forgotten
    when its catalogue changes (``sites.catalog_version``, raised by every product write and read
    once per batch of events)."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._sites: dict[int, SiteVerdicts] = {}
        self._lock = threading.Lock()

    def of_site(self, site_id: int) -> SiteVerdicts:
        from ..models import Site

        version = db.session.scalar(select(Site.__table__.c.catalog_version).where(Site.__table__.c.id == site_id))
        found = self._sites.get(site_id)
        if found is None or found.catalog != version or len(found.facts) > self.size:
            found = SiteVerdicts(version)
            with self._lock:
                self._sites[site_id] = found
        return found


class SiteVerdicts:
    def __init__(self, catalog: int | None):
        self.catalog = catalog
        self.facts: dict[str, ProductFacts | None] = {}
        self.verdicts: dict[tuple[int, int], dict[str, bool]] = {}

    def of(self, journey: LiveJourney) -> dict[str, bool]:
        return self.verdicts.setdefault((journey.id, journey.version), {})

    def load(self, site_id: int, product_ids) -> None:
        wanted = [p for p in product_ids if p not in self.facts]
        if wanted:
            found = product_facts(site_id, wanted)
            self.facts.update({p: found.get(p) for p in wanted})


def product_verdicts() -> ProductVerdicts:
    from flask import current_app

    return current_app.extensions.setdefault("personalize.journeys.product_verdicts", ProductVerdicts())


def event_data(event) -> dict[str, Any]:
    when = event.occurred_at.isoformat() + "Z" if isinstance(event.occurred_at, datetime) else str(event.occurred_at)
    data = {"event": event.type, "event_id": event.event_id, "occurred_at": when, "properties": dict(event.properties or {})}
    if event.product_id:
        data["product_id"] = event.product_id
    return data


def on_events(site_id: int, events: list, now: datetime | None = None, received: dict[str, datetime] | None = None,
              remember: bool = False, catch_up: bool = False) -> int:
    """Handle stored events (``personalize.records.Event``): enter people, end entries whose goal
    was reached, answer waits for events. Returns the number of entries made. Commits.

    ``received`` gives the time each event (by id) was stored, when it is not now (the
    catch-up): goals and waits count an event stored after the person reached the step,
    whatever the clock of the browser that sent it said. With ``catch_up`` (the catch-up's
    second look) a journey is entered only for events stored since it was last activated
    (nothing that happened while it was paused).
    ``remember`` (the listener, not the catch-up) drops repeated triggers this process
    decided lately (:class:`Decided`).

    Which events enter whom is decided first (:func:`match_events`, :func:`plan_entries`:
    reads); the SQLite writer turn is taken only for the writes.
    """
    now = now or utcnow()
    live = live_journeys(site_id)
    if not live.journeys:
        return 0
    plans: list[Plan] = []
    wanted = [e for e in events if e.type in live.by_event and e.profile_id]
    if wanted:
        plans = plan_entries(match_events(site_id, live, wanted, received if catch_up else None, remember), now, remember)
    goal_events = [e for e in events if e.type in live.goal_events and e.profile_id]
    awaited = [e for e in events if e.type in live.awaited and e.profile_id]
    if not (plans or goal_events or awaited):
        return 0
    received = received or {}
    prepared = prepare_entries(plans, now) if plans else None
    with writer_turn("journeys"):
        try:
            entered = len(write_entries(prepared, now)) if prepared is not None else 0
            if goal_events:
                reach_goals(site_id, [(e.profile_id, e.type, received.get(e.event_id, now), e.event_id) for e in goal_events], now)
            if awaited:
                answer_waits(site_id, [(e.profile_id, e.type, e.event_id, received.get(e.event_id, now)) for e in awaited], now)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    if remember and plans:
        remember_entries(plans)
    return entered


def match_events(site_id: int, live, events: list, received: dict[str, datetime] | None = None,
                 remember: bool = False) -> list[tuple[LiveJourney, list[Candidate]]]:
    """Which journeys each event (of a known person) triggers: its type, and the trigger's
    ``where`` filters (compiled once per journey version, :func:`compile_where`); filters on
    the product alone are decided once per product (:class:`ProductVerdicts`). The first
    matching event of a person counts; with ``received`` (when each event was stored), an event
    stored before the journey was last activated counts for nobody. No writes."""
    memory, clock = (decided(), time.monotonic()) if remember else (None, 0.0)
    by_type: dict[str, list] = defaultdict(list)
    for e in events:
        by_type[e.type].append(e)
    journeys = [j for t in by_type for j in live.by_event.get(t, ())]
    verdicts = product_verdicts().of_site(site_id) if any(compile_where(j).reads_product for j in journeys) else None
    if verdicts is not None:  # the facts of the products some filter still has to decide, in one query
        facts = verdicts.facts  # a verdict is only ever made from loaded facts: a product without them has none either
        reading = {j.trigger["event"] for j in journeys if compile_where(j).reads_product}
        verdicts.load(site_id, {e.product_id for t in reading for e in by_type[t] if e.product_id and e.product_id not in facts})
    data: dict[str, dict] = {}
    out: list[tuple[LiveJourney, list[Candidate]]] = []
    for journey in journeys:
        where = compile_where(journey)
        since = journey.activated_at if received is not None else None
        known = verdicts.of(journey) if verdicts is not None and where.product_only else None
        found: dict[int, Candidate] = {}  # the first event of each person counts: they enter once at a time
        passed: set[int] = set()  # people this process decided lately for the journey (asked once per person, not per event)
        for e in by_type[journey.trigger["event"]]:
            pid = e.profile_id
            if pid in found or pid in passed:
                continue
            if memory is not None and memory.known(journey.id, pid, clock):
                passed.add(pid)
                continue
            if since is not None and (received.get(e.event_id) or since) < since:
                continue  # stored while the journey was not live
            if where.tests:
                if known is not None:
                    holds = known.get(e.product_id)
                    if holds is None:
                        holds = known[e.product_id] = where.holds(e, verdicts.facts.get(e.product_id))
                else:
                    holds = where.holds(e, verdicts.facts.get(e.product_id) if verdicts is not None else None)
                if not holds:
                    continue
            if e.event_id not in data:
                data[e.event_id] = event_data(e)
            found[pid] = Candidate(pid, f"e:{e.event_id}", f"event {e.type}", data[e.event_id])
        if found:
            out.append((journey, list(found.values())))
    return out


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


@holding_writer_turn("journeys")
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


def _catch_up(name: str, table, time_column, now: datetime, handle, skip_before: datetime | None = None,
              sites: list[int] | None = None) -> int:
    """Walk ``table`` past the cursor ``name`` one settled window at a time: ``handle(after, bound, sites)``
    handles the rows with ``after < id <= bound`` for the sites that have a live journey (``sites``, when
    the caller looked them up) and says how many it handled; the cursor moves past the window in the same
    commit. Rows stored before ``skip_before`` are passed over unread."""
    cursor = _cursor(name, lambda: db.session.scalar(select(func.max(table.c.id))))
    sites = _sites_with_live_journeys() if sites is None else sites
    handled = 0
    edge = now - timedelta(seconds=SETTLE_SECONDS)
    while True:
        if skip_before is not None:
            passed = _settled_bound(table, time_column, cursor.position, min(edge, skip_before - timedelta(microseconds=1)))
            if passed > cursor.position:
                cursor.position, cursor.updated_at = passed, now
                db.session.commit()
                continue
            skip_before = None  # the cursor is past them: the windows after need no second look
        bound = _settled_bound(table, time_column, cursor.position, edge)
        if bound <= cursor.position:
            break
        if sites:
            handled += handle(cursor.position, bound, sites)
        cursor.position, cursor.updated_at = bound, now
        db.session.commit()
    return handled


MARKS_KEPT = timedelta(hours=1)  # a mark not written for this long is a process gone: forgotten
CHANGE_SECONDS = RECHECK_SECONDS + 5  # after a journey changes, until every process's inbox heard of it (clocks a little apart)


def unmarked(e, marks: dict[int, datetime], trusted_from: datetime | None):
    """The condition on event rows (``e``: the events table) that the inbox marks (``token ->
    handled before``) do not vouch for: no process token, a token without a mark, a time at or
    after its mark, or a time before ``trusted_from`` (a journey changed then: a process may not
    have heard of it yet). None when nothing is vouched for."""
    if not marks:
        return None
    return or_(e.c.stored_by.is_(None), e.c.stored_by.not_in(sorted(marks)),
               *([e.c.received_at < trusted_from] if trusted_from is not None else []),
               *[and_(e.c.stored_by == token, e.c.received_at >= before) for token, before in sorted(marks.items())])


def catch_up_events(now: datetime | None = None) -> int:
    """Handle the events stored since the cursor that are a minute old: whatever their
    notification did not (a process that died) is done now, and nothing twice. What a living
    process's inbox noted as handled (``journey_inbox_marks``) is not read again."""
    from ..records import Event as EventRecord

    now = now or utcnow()
    e = Event.__table__
    marks: dict[int, datetime] = {}
    gone: list[int] = []
    for token, before, written in db.session.execute(select(JourneyInboxMark.token, JourneyInboxMark.handled_before, JourneyInboxMark.updated_at)):
        if written < now - MARKS_KEPT:
            gone.append(token)
        else:
            marks[token] = before
    if gone:
        db.session.execute(delete(JourneyInboxMark).where(JourneyInboxMark.token.in_(gone)))
        db.session.commit()
    live_sites = _sites_with_live_journeys()
    changed = db.session.scalar(select(func.max(Journey.updated_at)).where(Journey.site_id.in_(live_sites))) if live_sites else None
    unvouched = unmarked(e, marks, changed + timedelta(seconds=CHANGE_SECONDS) if changed is not None else None)

    def handle(after: int, bound: int, sites: list[int]) -> int:
        # the window by its ids alone (the primary key): a condition on the site here made SQLite walk
        # the site's whole (site, time) index for every window; the sites and the event types their live
        # journeys hear are picked out below
        heard = {site_id: live_journeys(site_id).heard for site_id in sites}
        rows = db.session.execute(
            select(e.c.site_id, e.c.event_id, e.c.type, e.c.visitor, e.c.profile_id, e.c.occurred_at, e.c.product_id, e.c.properties,
                   e.c.received_at)
            .where(e.c.id > after, e.c.id <= bound, e.c.profile_id.is_not(None), *([unvouched] if unvouched is not None else []))
            .order_by(e.c.id)
        ).all()
        log.debug("journeys catch-up: events after id %s up to %s: %s read", after, bound, len(rows))
        by_site: dict[int, list] = defaultdict(list)
        received: dict[str, datetime] = {}
        for site_id, event_id, etype, visitor, pid, at, product, props, got in rows:
            if etype in heard.get(site_id, ()):
                by_site[site_id].append(EventRecord(site_id, event_id, etype, visitor, pid, at, product or "", properties=props or {}))
                received[event_id] = got
        return sum(on_events(site_id, events, now, received, catch_up=True) for site_id, events in by_site.items())

    # An event stored before every live journey was last made active enters nobody (see match_events), and
    # the goals and waits it could answer are checked again by the runner when their step is due: after a
    # pause, what was stored meanwhile is passed over without being read.
    activated = [j.activated_at for site_id in live_sites for j in live_journeys(site_id).journeys]
    skip_before = min(activated) if activated and None not in activated else None
    return _catch_up("events", e, e.c.received_at, now, handle, skip_before, live_sites)


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
