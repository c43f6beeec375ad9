"""Incremental membership: re-evaluate one profile's segments in Python after it changed.

Called after new events are stored and after attributes change. The site's rule
set is cached per process and re-read when any segment's ``updated_at`` moves.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    JSON,
    DateTime,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)

from ..db import db
from ..models import Event, Interaction, Order, Product, Profile, utcnow
from ..profiles.models import ProfileAttribute
from ..recommend.data import PURCHASE
from .models import ProfileScore, Segment, SegmentChange, SegmentMember
from .outbox import announce
from .rules import Facts, behaviour_count_query, behaviours, evaluate
from .store import CompiledSegment, evaluation_order

SCORE_COLUMNS = [c for c in ProfileScore.__table__.c if c.name not in ("profile_id", "site_id")]


MAX_ROWS = 2000  # behaviour rows fetched per profile; beyond that, counts are asked of the database


@dataclass
class RuleSet:
    stamp: tuple
    segments: list[CompiledSegment]
    needs_orders: bool
    needs_scores: bool
    needs_attributes: bool
    event_types: frozenset[str] = frozenset()
    needs_purchases: bool = False
    window_days: float | None = None  # the longest behaviour window; None when one has none
    statements: Any = None
    checked: float = 0.0

    @classmethod
    def of(cls, stamp: tuple, segments: list[CompiledSegment]) -> RuleSet:
        text = repr([s.rule for s in segments])
        specs = [b for s in segments for b in behaviours(s.rule)]
        windows = [b.get("within_days") for b in specs]
        return cls(
            stamp, segments, needs_orders="orders." in text, needs_scores="scores." in text, needs_attributes="attributes." in text,
            event_types=frozenset(b["event"] for b in specs if b["event"] != "purchased"),
            needs_purchases=any(b["event"] == "purchased" for b in specs),
            window_days=None if any(w is None for w in windows) else max(windows, default=0.0),
        )


_lock = threading.Lock()
RECHECK_SECONDS = 1.0
STAMP = select(func.count(), func.max(Segment.updated_at)).where(Segment.site_id == bindparam("site"))


def rule_set(site_id: int) -> RuleSet:
    """The site's segments in evaluation order, cached until one of them changes.

    A change in this process drops the cache at once (``store``); one made by another
    process is seen within :data:`RECHECK_SECONDS`.
    """
    cache: dict[int, RuleSet] = current_app.extensions.setdefault("personalize.segments", {})
    cached = cache.get(site_id)
    now = time.monotonic()
    if cached is not None and now - cached.checked < RECHECK_SECONDS:
        return cached
    stamp = tuple(db.session.connection().execute(STAMP, {"site": site_id}).one())
    if cached is not None and cached.stamp == stamp:
        cached.checked = now
        return cached
    rows = db.session.execute(select(Segment.id, Segment.key, Segment.rule).where(Segment.site_id == site_id)).all()
    by_key = {key: CompiledSegment(sid, key, rule) for sid, key, rule in rows}
    order = evaluation_order({k: s.rule for k, s in by_key.items()})
    result = RuleSet.of(stamp, [by_key[k] for k in order])
    result.checked = now
    with _lock:
        cache[site_id] = result
    return result


class _Raw:
    """A SELECT compiled once for the database's driver and run on its cursor.

    For a one-profile lookup, SQLAlchemy's per-execution work costs more than the
    small indexed query itself; this keeps its compiler and types but skips that work.
    """

    def __init__(self, stmt, dialect):
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = dict(compiled.params)
        self.order = list(compiled.positiontup) if compiled.positional else None
        parse = dialect.name == "sqlite"  # the SQLite driver returns these as text
        self.convert = [
            (i, datetime.fromisoformat) if parse and isinstance(col.type, DateTime)
            else (i, json.loads) if parse and isinstance(col.type, JSON) else None
            for i, col in enumerate(stmt.selected_columns)
        ]
        self.convert = [c for c in self.convert if c is not None]
        self.sqlite = parse

    def rows(self, cursor, params: dict[str, Any]) -> list[tuple]:
        values = {**self.defaults, **params}
        if self.sqlite:
            values = {k: (v.isoformat(sep=" ", timespec="microseconds") if isinstance(v, datetime) else v) for k, v in values.items()}
        cursor.execute(self.sql, [values[k] for k in self.order] if self.order is not None else values)
        rows = cursor.fetchall()
        if not self.convert:
            return rows
        out = []
        for row in rows:
            row = list(row)
            for i, fn in self.convert:
                if isinstance(row[i], str):
                    row[i] = fn(row[i])
            out.append(tuple(row))
        return out


def _literals(names: frozenset[str]) -> list:
    # inlined, not an expanding parameter, so the SQL can be compiled once; the names are
    # validated event types (letters and _ only)
    return [literal_column(f"'{n}'") for n in sorted(names) if n.replace("_", "").isalpha()]


class _Statements:
    """The few queries that load one profile's facts, built once per rule set with bound parameters
    (building SQLAlchemy statements costs more than running these small indexed queries)."""

    def __init__(self, rules: RuleSet, dialect):
        pid, site = bindparam("pid"), bindparam("site")
        cols: list[Any] = [Profile.email, Profile.customer_id, Profile.created_at, Profile.last_seen_at]
        if rules.needs_orders:
            mine = (Order.site_id == site, Order.profile_id == Profile.id)
            cols += [
                select(agg).where(*mine).scalar_subquery()
                for agg in (func.count(), func.coalesce(func.sum(Order.total), 0.0), func.avg(Order.total), func.min(Order.occurred_at), func.max(Order.occurred_at))
            ]
        source: Any = Profile.__table__
        if rules.needs_scores:
            cols += SCORE_COLUMNS
            source = source.outerjoin(ProfileScore.__table__, ProfileScore.profile_id == Profile.id)
        self.main = select(*cols).select_from(source).where(Profile.id == pid, Profile.site_id == site)
        self.attributes = select(ProfileAttribute.name, ProfileAttribute.value).where(ProfileAttribute.profile_id == pid)
        self.members = select(SegmentMember.segment_id).where(SegmentMember.profile_id == pid)
        self.key_of = {seg.id: seg.key for seg in rules.segments}
        since = bindparam("since")
        self.events = self.purchases = None
        if rules.event_types:
            q = (
                select(Event.type, Event.product_id, Event.occurred_at, Product.category)
                .outerjoin(Product, and_(Product.site_id == site, Product.external_id == Event.product_id))
                .where(Event.profile_id == pid, Event.type.in_(_literals(rules.event_types)))  # by the profile index, not the site's
            )
            self.events = (q.where(Event.occurred_at >= since) if rules.window_days is not None else q).limit(MAX_ROWS + 1)
        if rules.needs_purchases:
            q = (
                select(literal("purchased"), Interaction.product_id, Interaction.occurred_at, Product.category)
                .outerjoin(Product, and_(Product.site_id == site, Product.external_id == Interaction.product_id))
                .where(Interaction.site_id == site, Interaction.profile_id == pid, Interaction.kind == PURCHASE)
            )
            self.purchases = (q.where(Interaction.occurred_at >= since) if rules.window_days is not None else q).limit(MAX_ROWS + 1)
        for name in ("main", "attributes", "members", "events", "purchases"):
            stmt = getattr(self, name)
            if stmt is not None:
                setattr(self, name, _Raw(stmt, dialect))


def load_facts(site_id: int, profile_id: int, now: datetime, rules: RuleSet) -> Facts | None:
    """Everything a rule may look at for one profile (``None`` when the profile is gone)."""
    conn = db.session.connection()
    if rules.statements is None:
        rules.statements = _Statements(rules, conn.dialect)
    st = rules.statements
    cursor = conn.connection.cursor()
    params = {"pid": profile_id, "site": site_id}
    found = st.main.rows(cursor, params)
    if not found:
        return None
    row = found[0]
    profile = {"email": row[0], "customer_id": row[1], "created_at": row[2], "last_seen_at": row[3]}
    at = 4
    orders: dict[str, Any] = {}
    if rules.needs_orders:
        orders = dict(zip(("count", "total", "avg", "first_at", "last_at"), row[at : at + 5], strict=True))
        at += 5
    scores: dict[str, Any] = {}
    if rules.needs_scores and row[at] is not None:  # orders is never NULL in a stored score
        scores = dict(zip([c.name for c in SCORE_COLUMNS], row[at:], strict=True))
    attributes = dict(st.attributes.rows(cursor, params)) if rules.needs_attributes else {}
    members = {st.key_of[i] for (i,) in st.members.rows(cursor, params) if i in st.key_of}
    return Facts(
        profile=profile, orders=orders, scores=scores, attributes=attributes, members=members,
        count=_behaviour_counter(site_id, profile_id, now, rules),
    )


def _behaviour_counter(site_id: int, profile_id: int, now: datetime, rules: RuleSet):
    """Count behaviours from the profile's rows fetched once (two queries at most), not one query each."""

    def ask_database(b: dict) -> int:
        return db.session.scalar(behaviour_count_query(b, site_id, now, profile_id)) or 0

    if not rules.event_types and not rules.needs_purchases:
        return ask_database
    st = rules.statements
    cursor = db.session.connection().connection.cursor()
    params: dict[str, Any] = {"pid": profile_id, "site": site_id}
    if rules.window_days is not None:
        params["since"] = now - timedelta(days=rules.window_days)
    rows: dict[str, list] = {}
    if st.events is not None:
        rows["events"] = st.events.rows(cursor, params)
    if st.purchases is not None:
        rows["purchased"] = st.purchases.rows(cursor, params)

    def count(b: dict) -> int:
        found = rows.get("purchased" if b["event"] == "purchased" else "events", [])
        if len(found) > MAX_ROWS:
            return ask_database(b)
        edge = now - timedelta(days=b["within_days"]) if "within_days" in b else None
        return sum(
            1 for etype, product, when, category in found
            if etype == b["event"] and (edge is None or when >= edge)
            and ("product_id" not in b or product == b["product_id"]) and ("category" not in b or category == b["category"])
        )

    return count


def evaluate_profile(site_id: int, profile_id: int, now: datetime | None = None) -> set[str] | None:
    """The keys of the segments a profile belongs to by the rules right now (nothing is written)."""
    now = now or utcnow()
    rules = rule_set(site_id)
    facts = load_facts(site_id, profile_id, now, rules)
    if facts is None:
        return None
    for seg in rules.segments:
        if evaluate(seg.rule, facts, now):
            facts.members.add(seg.key)
        else:
            facts.members.discard(seg.key)
    return {s.key for s in rules.segments if s.key in facts.members}


def refresh_profiles(site_id: int, profile_ids: list[int], now: datetime | None = None) -> list[tuple[int, int, bool]]:
    """Bring the stored membership of these profiles up to date, record each change, commit,
    and tell plugins (``segment_membership_changed``).

    :returns: the changes as ``(segment id, profile id, entered)``.
    """
    now = now or utcnow()
    rules = rule_set(site_id)
    if not rules.segments:
        return []
    ids = {s.key: s.id for s in rules.segments}
    changes: list[tuple[int, int, bool]] = []
    for profile_id in dict.fromkeys(profile_ids):
        facts = load_facts(site_id, profile_id, now, rules)
        if facts is None:
            continue
        before = set(facts.members)
        for seg in rules.segments:
            if evaluate(seg.rule, facts, now):
                facts.members.add(seg.key)
            else:
                facts.members.discard(seg.key)
        for key in facts.members - before:
            changes.append((ids[key], profile_id, True))
        for key in before - facts.members:
            if key in ids:
                changes.append((ids[key], profile_id, False))
    if not changes:
        return []
    try:
        _write(site_id, changes, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    announce(site_id, [(seg_id, pid, entered, now) for seg_id, pid, entered in changes], {s.id: s.key for s in rules.segments})
    return changes


def _write(site_id: int, changes: list[tuple[int, int, bool]], now: datetime) -> None:
    conn = db.session.connection()
    entered = [{"segment_id": s, "profile_id": p, "since": now} for s, p, e in changes if e]
    if entered:
        conn.execute(_join_statement(conn.dialect.name), entered)
    left = [{"seg": s, "pid": p} for s, p, e in changes if not e]
    if left:
        conn.execute(LEAVE, left)
    conn.execute(RECORD, [
        {"site_id": site_id, "segment_id": s, "profile_id": p, "change": "entered" if e else "left", "at": now}
        for s, p, e in changes
    ])
    delta: dict[int, int] = {}
    for s, _p, e in changes:
        delta[s] = delta.get(s, 0) + (1 if e else -1)
    counts = [{"seg": s, "d": d} for s, d in delta.items() if d]
    if counts:
        conn.execute(COUNT, counts)


def _join_statement(dialect: str):
    """``INSERT … ON CONFLICT DO NOTHING`` into the members: a concurrent refresh may have added the row."""
    if dialect not in _JOIN:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        _JOIN[dialect] = dialect_insert(SegmentMember).on_conflict_do_nothing(index_elements=["segment_id", "profile_id"])
    return _JOIN[dialect]


_JOIN: dict[str, Any] = {}
LEAVE = delete(SegmentMember).where(SegmentMember.segment_id == bindparam("seg"), SegmentMember.profile_id == bindparam("pid"))
RECORD = insert(SegmentChange)
COUNT = update(Segment).where(Segment.id == bindparam("seg")).values(member_count=Segment.member_count + bindparam("d"))
