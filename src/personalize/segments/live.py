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

from ..db import db, writer_turn
from ..kinds import PURCHASE
from ..models import Event, Interaction, Order, Product, Profile, utcnow
from ..profiles.models import ProfileAttribute
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

    def send(self, cursor, params: dict[str, Any]) -> None:
        values = {**self.defaults, **params}
        if self.sqlite:
            values = {k: (v.isoformat(sep=" ", timespec="microseconds") if isinstance(v, datetime) else v) for k, v in values.items()}
        cursor.execute(self.sql, [values[k] for k in self.order] if self.order is not None else values)

    def fetch(self, cursor) -> list[tuple]:
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


QUERIES = ("main", "attributes", "members", "events", "purchases")


def _fetch_all(conn, st: _Statements, rules: RuleSet, params: dict[str, Any]) -> dict[str, list[tuple]]:
    """Run the profile's queries; on PostgreSQL all of them travel in one pipeline (one round trip, BEGIN included)."""
    wanted = [name for name in QUERIES if getattr(st, name) is not None and (name != "attributes" or rules.needs_attributes)]
    raw = conn.connection
    if conn.dialect.name == "postgresql":
        pg = raw.dbapi_connection
        cursors = {name: pg.cursor() for name in wanted}
        with pg.pipeline():  # leaving the block syncs once and collects every result
            for name in wanted:
                getattr(st, name).send(cursors[name], params)
        return {name: getattr(st, name).fetch(cursors[name]) for name in wanted}
    cursor = raw.cursor()
    out = {}
    for name in wanted:
        q = getattr(st, name)
        q.send(cursor, params)
        out[name] = q.fetch(cursor)
    return out


def load_facts(site_id: int, profile_id: int, now: datetime, rules: RuleSet) -> Facts | None:
    """Everything a rule may look at for one profile (``None`` when the profile is gone)."""
    conn = db.session.connection()
    if rules.statements is None:
        rules.statements = _Statements(rules, conn.dialect)
    st = rules.statements
    params: dict[str, Any] = {"pid": profile_id, "site": site_id}
    if rules.window_days is not None:
        params["since"] = now - timedelta(days=rules.window_days)
    found = _fetch_all(conn, st, rules, params)
    if not found["main"]:
        return None
    row = found["main"][0]
    profile = {"email": row[0], "customer_id": row[1], "created_at": row[2], "last_seen_at": row[3]}
    at = 4
    orders: dict[str, Any] = {}
    if rules.needs_orders:
        orders = dict(zip(("count", "total", "avg", "first_at", "last_at"), row[at : at + 5], strict=True))
        at += 5
    scores: dict[str, Any] = {}
    if rules.needs_scores and row[at] is not None:  # orders is never NULL in a stored score
        scores = dict(zip([c.name for c in SCORE_COLUMNS], row[at:], strict=True))
    attributes = dict(found["attributes"]) if rules.needs_attributes else {}
    members = {st.key_of[i] for (i,) in found["members"] if i in st.key_of}
    return Facts(
        profile=profile, orders=orders, scores=scores, attributes=attributes, members=members,
        count=_behaviour_counter(site_id, profile_id, now, found),
    )


def _behaviour_counter(site_id: int, profile_id: int, now: datetime, found: dict[str, list[tuple]]):
    """Count behaviours in Python from the profile's rows, fetched with its other facts; ask the
    database only past :data:`MAX_ROWS` rows (or when no behaviour rows were wanted)."""

    def ask_database(b: dict) -> int:
        return db.session.scalar(behaviour_count_query(b, site_id, now, profile_id)) or 0

    if "events" not in found and "purchases" not in found:
        return ask_database
    rows = {"events": found.get("events", []), "purchased": found.get("purchases", [])}

    def count(b: dict) -> int:
        found = rows["purchased" if b["event"] == "purchased" else "events"]
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
    identities = None
    try:
        if db.session.connection().dialect.name == "postgresql":
            changes, identities = _write_and_commit_pg(site_id, changes, now)
        else:
            with writer_turn("segments"):  # SQLite: after the events' group, not against it in SQLite's sleeping wait
                changes = _write(site_id, changes, now)
                db.session.commit()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    announce(site_id, [(seg_id, pid, entered, now) for seg_id, pid, entered in changes], {s.id: s.key for s in rules.segments}, identities)
    return changes


def _write_and_commit_pg(site_id: int, changes: list[tuple[int, int, bool]], now: datetime):
    """PostgreSQL: every write of the refresh in one statement, pipelined with its COMMIT (one round trip).

    Returns the changes that took effect and the changed profiles' identities (for the hook,
    read in the same statement). The session's own commit that follows finds nothing left to do.
    """
    db.session.flush()  # anything the caller left pending belongs to this transaction too
    pg = db.session.connection().connection.dbapi_connection
    cursor = pg.cursor()
    with pg.pipeline():
        cursor.execute(WRITE_PG, {
            "segs": [s for s, _p, _e in changes], "pids": [p for _s, p, _e in changes], "entered": [e for _s, _p, e in changes],
            "site": site_id, "now": now,
        })
        pg.commit()
    done, identities = [], {}
    for seg, pid, entered, kinds, values in cursor.fetchall():
        done.append((seg, pid, bool(entered)))
        mine = identities.setdefault(pid, {})
        for kind, value in zip(kinds, values, strict=True):
            mine.setdefault(kind, value)
    return done, identities


def _write(site_id: int, changes: list[tuple[int, int, bool]], now: datetime) -> list[tuple[int, int, bool]]:
    """Apply membership changes, record them in the outbox and move the member counts (SQLite).

    Only the changes that took effect are recorded and returned: when two processes
    refresh the same profile at once, the second finds the row added (or gone) already,
    and neither the feed nor the count sees the change twice.
    """
    conn = db.session.connection()
    done = []
    for s, p, e in changes:  # SQLite: in-process statements, one per change, each telling whether it did anything
        stmt = _join_statement(conn.dialect.name) if e else LEAVE
        args = {"segment_id": s, "profile_id": p, "since": now} if e else {"seg": s, "pid": p}
        if conn.execute(stmt, args).rowcount:
            done.append((s, p, e))
    if not done:
        return []
    conn.execute(RECORD, [
        {"site_id": site_id, "segment_id": s, "profile_id": p, "change": "entered" if e else "left", "at": now}
        for s, p, e in done
    ])
    delta: dict[int, int] = {}
    for s, _p, e in done:
        delta[s] = delta.get(s, 0) + (1 if e else -1)
    counts = [{"seg": s, "d": d} for s, d in delta.items() if d]
    if counts:
        conn.execute(COUNT, counts)
    return done


# PostgreSQL: every write of one refresh in one statement, whatever the number of changes; like
# ``_write``, only what took effect is recorded and counted.
WRITE_PG = """
WITH wanted AS (
    SELECT * FROM unnest(%(segs)s::integer[], %(pids)s::integer[], %(entered)s::boolean[]) AS w(segment_id, profile_id, entered)
), joined AS (
    INSERT INTO segment_members (segment_id, profile_id, since)
    SELECT segment_id, profile_id, %(now)s FROM wanted WHERE entered
    ON CONFLICT (segment_id, profile_id) DO NOTHING
    RETURNING segment_id, profile_id
), gone AS (
    DELETE FROM segment_members AS m USING wanted AS w
    WHERE NOT w.entered AND m.segment_id = w.segment_id AND m.profile_id = w.profile_id
    RETURNING m.segment_id, m.profile_id
), done AS (
    SELECT segment_id, profile_id, true AS entered FROM joined
    UNION ALL SELECT segment_id, profile_id, false FROM gone
), recorded AS (
    INSERT INTO segment_changes (site_id, segment_id, profile_id, change, at)
    SELECT %(site)s, segment_id, profile_id, CASE WHEN entered THEN 'entered' ELSE 'left' END, %(now)s FROM done
), counted AS (
    UPDATE segments AS s SET member_count = s.member_count + d.n
    FROM (SELECT segment_id, sum(CASE WHEN entered THEN 1 ELSE -1 END) AS n FROM done GROUP BY segment_id) AS d
    WHERE s.id = d.segment_id AND d.n <> 0
)
SELECT d.segment_id, d.profile_id, d.entered,
    ARRAY(SELECT i.kind FROM identities AS i WHERE i.profile_id = d.profile_id AND i.kind <> 'visitor' ORDER BY i.id),
    ARRAY(SELECT i.value FROM identities AS i WHERE i.profile_id = d.profile_id AND i.kind <> 'visitor' ORDER BY i.id)
FROM done AS d
"""


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
