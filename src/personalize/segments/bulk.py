"""Bulk membership: a segment's rule compiled to SQL, counted (preview) or applied to every profile.

A rebuild is a handful of set-based statements, whatever the number of profiles:
record who enters (matches, not yet a member) and who leaves (a member, no longer
matches) in the outbox, then apply those changes to the member table.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    select,
    update,
)

from ..db import db
from ..models import Profile, utcnow
from .models import ProfileScore, Segment, SegmentChange, SegmentMember
from .outbox import announce_since
from .rules import (
    SqlContext,
    referenced_segments,
    to_sql,
    uses_relative_dates,
    uses_scores,
    validate_rule,
)
from .store import all_segments, evaluation_order, get_segment, segment_ids


def _dialect_insert(table):
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(table)


def _context(site_id: int, now: datetime) -> SqlContext:
    return SqlContext(site_id=site_id, now=now, dialect=db.session.get_bind().dialect.name, segment_ids=segment_ids(site_id))


def _source(rule: dict, base):
    """``base`` (profiles, or members joined to profiles) with the scores joined when the rule needs them."""
    if uses_scores(rule):
        s = ProfileScore.__table__
        return base.outerjoin(s, s.c.profile_id == Profile.__table__.c.id)
    return base


def matching(site_id: int, rule: dict, now: datetime | None = None):
    """``SELECT profiles.id`` of the profiles a (validated) rule matches."""
    p = Profile.__table__
    ctx = _context(site_id, now or utcnow())
    return select(p.c.id).select_from(_source(rule, p)).where(p.c.site_id == site_id, to_sql(rule, ctx))


def preview_count(site_id: int, rule: Any, now: datetime | None = None) -> int:
    """How many profiles a rule would match now (validates the rule first)."""
    rule = validate_rule(rule)
    q = matching(site_id, rule, now)
    return db.session.scalar(select(func.count()).select_from(q.subquery())) or 0


def rebuild_segment(site_id: int, key: str, now: datetime | None = None) -> dict[str, Any]:
    """Recompute one segment's members from its rule over every profile of the site.

    Returns ``{"entered", "left", "members", "seconds"}``. Commits, then announces
    the changes to plugins.
    """
    started = time.perf_counter()
    now = now or utcnow()
    seg = get_segment(site_id, key)
    if seg is None:
        raise KeyError(key)
    rule, seg_id = seg.rule, seg.id
    p, m, c = Profile.__table__, SegmentMember.__table__, SegmentChange.__table__
    ctx = _context(site_id, now)
    cond = to_sql(rule, ctx)
    try:
        before = db.session.scalar(select(func.coalesce(func.max(c.c.id), 0))) or 0
        consts = (literal(site_id, Integer), literal(seg_id, Integer))
        entering = (
            select(*consts, p.c.id, literal("entered", String), literal(now, DateTime))
            .select_from(_source(rule, p))
            .where(p.c.site_id == site_id, cond, not_(exists().where(m.c.segment_id == seg_id, m.c.profile_id == p.c.id)))
        )
        cols = ["site_id", "segment_id", "profile_id", "change", "at"]
        db.session.execute(insert(c).from_select(cols, entering))
        leaving = (
            select(*consts, m.c.profile_id, literal("left", String), literal(now, DateTime))
            .select_from(_source(rule, m.join(p, p.c.id == m.c.profile_id)))
            .where(m.c.segment_id == seg_id, not_(cond))
        )
        db.session.execute(insert(c).from_select(cols, leaving))
        fresh = and_(c.c.site_id == site_id, c.c.id > before, c.c.segment_id == seg_id)
        entered = db.session.scalar(select(func.count()).select_from(c).where(fresh, c.c.change == "entered")) or 0
        left = db.session.scalar(select(func.count()).select_from(c).where(fresh, c.c.change == "left")) or 0
        # ON CONFLICT: a live update may have added some of them meanwhile
        db.session.execute(_dialect_insert(m).from_select(
            ["segment_id", "profile_id", "since"],
            select(c.c.segment_id, c.c.profile_id, c.c.at).where(fresh, c.c.change == "entered"),
        ).on_conflict_do_nothing(index_elements=["segment_id", "profile_id"]))
        db.session.execute(delete(m).where(
            m.c.segment_id == seg_id,
            m.c.profile_id.in_(select(c.c.profile_id).where(fresh, c.c.change == "left")),
        ))
        members = db.session.scalar(select(func.count()).select_from(m).where(m.c.segment_id == seg_id)) or 0
        db.session.execute(update(Segment).where(Segment.id == seg_id).values(member_count=members, status="ready", rebuilt_at=now))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    announce_since(site_id, seg_id, before)
    return {"entered": entered, "left": left, "members": members, "seconds": round(time.perf_counter() - started, 3)}


def rebuild_all(site_id: int, now: datetime | None = None, progress=None) -> dict[str, dict[str, Any]]:
    """Rebuild every segment of a site, each after the segments its rule names."""
    now = now or utcnow()
    rules = {s.key: s.rule for s in all_segments(site_id)}
    out = {}
    for key in evaluation_order(rules):
        out[key] = rebuild_segment(site_id, key, now)
        if progress:
            progress(key, out[key])
    return out


def rebuild_job(site_id: int, key: str) -> dict[str, Any] | None:
    """The ``segment_rebuild`` job (what the API and the admin start): rebuild one segment; a segment
    deleted before the job ran is nothing to do. Running it twice changes nothing the first did."""
    if get_segment(site_id, key) is None:
        return None
    return rebuild_segment(site_id, key)


def drifting(rules: dict[str, dict]) -> list[str]:
    """Keys of the segments whose membership moves with the clock alone, in evaluation order: rules
    with a relative date ("within / older than N days", a behaviour window), and the segments that
    name one of those, directly or through others."""
    moving = {k for k, rule in rules.items() if uses_relative_dates(rule)}
    grew = True
    while grew:
        more = {k for k, rule in rules.items() if k not in moving and referenced_segments(rule) & moving}
        moving |= more
        grew = bool(more)
    return [k for k in evaluation_order(rules) if k in moving]


def rebuild_drifting(site_id: int | None = None, now: str | None = None) -> dict[str, dict[str, Any]]:
    """The ``segments_relative`` job: rebuild, on one site or every site, only the segments whose
    members change as time passes (see :func:`drifting`), so members drop out of a window
    without any new event. ``now`` (ISO 8601, UTC) is for tests; the default is the clock.

    Returns ``{"<site id>/<key>": rebuild summary}``.
    """
    from ..models import Site

    moment = datetime.fromisoformat(now.removesuffix("Z")).replace(tzinfo=None) if now else utcnow()
    sites = [site_id] if site_id is not None else list(db.session.scalars(select(Segment.site_id).distinct().order_by(Segment.site_id)))
    out: dict[str, dict[str, Any]] = {}
    for sid in sites:
        if db.session.get(Site, sid) is None:
            continue
        for key in drifting({s.key: s.rule for s in all_segments(sid)}):
            out[f"{sid}/{key}"] = rebuild_segment(sid, key, moment)
    return out


def members_page(site_id: int, key: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """A page of a segment's members by profile id (``after`` is the last id of the previous page)."""
    seg = get_segment(site_id, key)
    if seg is None:
        raise KeyError(key)
    rows = db.session.execute(
        select(SegmentMember.profile_id, SegmentMember.since, Profile.email, Profile.customer_id)
        .join(Profile, Profile.id == SegmentMember.profile_id)
        .where(SegmentMember.segment_id == seg.id, SegmentMember.profile_id > after)
        .order_by(SegmentMember.profile_id).limit(limit)
    ).all()
    return [{"profile_id": pid, "since": since.isoformat() + "Z", "email": email, "customer_id": cid} for pid, since, email, cid in rows]
