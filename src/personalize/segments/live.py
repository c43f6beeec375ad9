"""Incremental membership: re-evaluate one profile's segments in Python after it changed.

Called after new events are stored and after attributes change. The site's rule
set is cached per process and re-read when any segment's ``updated_at`` moves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, insert, select, update

from ..db import db, insert_ignoring_conflicts
from ..models import Order, Profile, utcnow
from ..profiles.models import ProfileAttribute
from .models import ProfileScore, Segment, SegmentChange, SegmentMember
from .outbox import announce
from .rules import Facts, behaviour_count_query, evaluate
from .store import CompiledSegment, evaluation_order

SCORE_COLUMNS = [c for c in ProfileScore.__table__.c if c.name not in ("profile_id", "site_id")]


@dataclass
class RuleSet:
    stamp: tuple
    segments: list[CompiledSegment]
    needs_orders: bool
    needs_scores: bool
    needs_attributes: bool


_lock = threading.Lock()


def rule_set(site_id: int) -> RuleSet:
    """The site's segments in evaluation order, cached until one of them changes."""
    stamp = tuple(db.session.execute(
        select(func.count(), func.max(Segment.updated_at)).where(Segment.site_id == site_id)
    ).one())
    cache: dict[int, RuleSet] = current_app.extensions.setdefault("personalize.segments", {})
    cached = cache.get(site_id)
    if cached is not None and cached.stamp == stamp:
        return cached
    rows = db.session.execute(select(Segment.id, Segment.key, Segment.rule).where(Segment.site_id == site_id)).all()
    by_key = {key: CompiledSegment(sid, key, rule) for sid, key, rule in rows}
    order = evaluation_order({k: s.rule for k, s in by_key.items()})
    text = repr([s.rule for s in by_key.values()])
    result = RuleSet(
        stamp, [by_key[k] for k in order],
        needs_orders="orders." in text, needs_scores="scores." in text, needs_attributes="attributes." in text,
    )
    with _lock:
        cache[site_id] = result
    return result


def load_facts(site_id: int, profile_id: int, now: datetime, rules: RuleSet) -> Facts | None:
    """Everything a rule may look at for one profile (``None`` when the profile is gone)."""
    row = db.session.execute(
        select(Profile.email, Profile.customer_id, Profile.created_at, Profile.last_seen_at).where(Profile.id == profile_id, Profile.site_id == site_id)
    ).first()
    if row is None:
        return None
    profile = {"email": row[0], "customer_id": row[1], "created_at": row[2], "last_seen_at": row[3]}
    orders: dict[str, Any] = {}
    if rules.needs_orders:
        count, total, avg, first, last = db.session.execute(
            select(func.count(), func.coalesce(func.sum(Order.total), 0.0), func.avg(Order.total), func.min(Order.occurred_at), func.max(Order.occurred_at))
            .where(Order.site_id == site_id, Order.profile_id == profile_id)
        ).one()
        orders = {"count": count, "total": total, "avg": avg, "first_at": first, "last_at": last}
    scores: dict[str, Any] = {}
    if rules.needs_scores:
        srow = db.session.execute(select(*SCORE_COLUMNS).where(ProfileScore.profile_id == profile_id)).first()
        if srow is not None:
            scores = dict(zip([c.name for c in SCORE_COLUMNS], srow, strict=True))
    attributes: dict[str, Any] = {}
    if rules.needs_attributes:
        attributes = dict(db.session.execute(
            select(ProfileAttribute.name, ProfileAttribute.value).where(ProfileAttribute.profile_id == profile_id)
        ).all())
    members = set(db.session.scalars(
        select(Segment.key).join(SegmentMember, SegmentMember.segment_id == Segment.id).where(SegmentMember.profile_id == profile_id)
    ))
    return Facts(
        profile=profile, orders=orders, scores=scores, attributes=attributes, members=members,
        count=lambda b: db.session.scalar(behaviour_count_query(b, site_id, now, profile_id)) or 0,
    )


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
    announce(site_id, [(seg_id, pid, entered, now) for seg_id, pid, entered in changes])
    return changes


def _write(site_id: int, changes: list[tuple[int, int, bool]], now: datetime) -> None:
    entered = [{"segment_id": s, "profile_id": p, "since": now} for s, p, e in changes if e]
    insert_ignoring_conflicts(SegmentMember, entered, ["segment_id", "profile_id"])  # a concurrent refresh may have won
    for s, p, e in changes:
        if not e:
            db.session.execute(delete(SegmentMember).where(SegmentMember.segment_id == s, SegmentMember.profile_id == p))
    db.session.execute(insert(SegmentChange), [
        {"site_id": site_id, "segment_id": s, "profile_id": p, "change": "entered" if e else "left", "at": now}
        for s, p, e in changes
    ])
    delta: dict[int, int] = {}
    for s, _p, e in changes:
        delta[s] = delta.get(s, 0) + (1 if e else -1)
    for s, d in delta.items():
        if d:
            db.session.execute(update(Segment).where(Segment.id == s).values(member_count=Segment.member_count + d))
