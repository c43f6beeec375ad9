"""Who would enter a journey now: for the builder, before it is activated.

* entering or leaving a segment: nobody enters for being in it already, so the preview
  shows its members now (the people who would enter on joining it are like them);
* an event: the people who sent that event (with its filters) in the last 24 hours;
* a date: the people whose date comes today;
* the API: nobody until the shop's servers call it.

The trigger's entry condition applies to each; the re-entry rule and the control group
are applied when people really enter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from ..db import db
from ..models import Event, Profile, utcnow

SAMPLE = 20
SCAN = 5000


@dataclass
class Preview:
    what: str
    count: int
    sample: list[dict] = field(default_factory=list)
    capped: bool = False


def preview(site_id: int, definition: dict) -> Preview:
    from ..segments.bulk import matching
    from .store import LiveJourney
    from .triggers import compile_filters, date_candidates

    now = utcnow()
    trigger = definition["trigger"]
    kind = trigger["type"]
    pids: list[int] = []
    capped = False
    if kind in ("segment_entered", "segment_left"):
        from ..segments.models import SegmentMember
        from ..segments.store import segment_ids

        seg = segment_ids(site_id).get(trigger["segment"])
        what = f"members of segment {trigger['segment']} now"
        if seg is not None:
            pids = list(db.session.scalars(select(SegmentMember.profile_id).where(SegmentMember.segment_id == seg).order_by(SegmentMember.profile_id).limit(SCAN + 1)))
    elif kind == "event":
        what = f"people who sent {trigger['event']} in the last 24 hours"
        from ..records import Event as EventRecord
        from .triggers import product_facts

        rows = db.session.execute(
            select(Event.event_id, Event.type, Event.visitor, Event.profile_id, Event.occurred_at, Event.product_id, Event.properties)
            .where(Event.site_id == site_id, Event.type == trigger["event"], Event.occurred_at >= now - timedelta(days=1), Event.profile_id.is_not(None))
            .order_by(Event.id.desc()).limit(SCAN + 1)
        ).all()
        capped = len(rows) > SCAN
        events = [EventRecord(site_id, r[0], r[1], r[2], r[3], r[4], r[5] or "", properties=r[6] or {}) for r in rows[:SCAN]]
        products = product_facts(site_id, [e.product_id for e in events if e.product_id])
        where = compile_filters(trigger.get("where") or [])
        pids = list(dict.fromkeys(e.profile_id for e in events if where.holds(e, products.get(e.product_id))))
    elif kind == "date":
        from .email import get_settings
        from .pressure import local, zone

        tz = zone(get_settings(site_id).timezone)
        what = f"people whose {trigger['field']} comes today"
        fake = LiveJourney(0, site_id, "", "", 0, definition, None, now)  # type: ignore[arg-type]
        pids = [c.profile_id for c in date_candidates(fake, local(now, tz).date(), tz)][: SCAN + 1]
    else:
        return Preview("people your servers enter through the API", 0)
    if len(pids) > SCAN:
        pids, capped = pids[:SCAN], True
    condition = trigger.get("condition")
    if condition is not None and pids:
        p = Profile.__table__
        keep: set[int] = set()
        for start in range(0, len(pids), 500):
            keep.update(db.session.scalars(matching(site_id, condition, now).where(p.c.id.in_(pids[start : start + 500]))))
        pids = [i for i in pids if i in keep]
    sample = []
    if pids:
        rows = db.session.execute(select(Profile.id, Profile.email, Profile.customer_id).where(Profile.id.in_(pids[:SAMPLE]))).all()
        sample = [{"id": i, "email": e, "customer_id": c} for i, e, c in rows]
    return Preview(what, len(pids), sample, capped)
