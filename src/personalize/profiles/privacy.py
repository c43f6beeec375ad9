"""The person's rights: everything stored about them (export), and forgetting them (erase)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from ..db import db
from ..models import Event, Identity, Interaction, Order, Profile
from .attributes import attributes_of
from .models import ProfileMerge


def identities_by_kind(profile_id: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, value in db.session.execute(select(Identity.kind, Identity.value).where(Identity.profile_id == profile_id).order_by(Identity.id)):
        out.setdefault(kind, []).append(value)
    return out


def erase_profile(site_id: int, profile_id: int) -> dict[str, list[str]] | None:
    """Delete a profile and every row about it (events, orders, interactions, identities,
    attributes, scores, memberships, contact log, connector rows — all cascade), commit,
    and call ``profile_erased``. Returns the identities it had, or ``None`` if unknown.
    """
    profile = db.session.scalar(select(Profile).where(Profile.id == profile_id, Profile.site_id == site_id))
    if profile is None:
        return None
    identities = identities_by_kind(profile_id)
    try:
        db.session.delete(profile)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    from ..plugins import hooks

    hooks().profile_erased(site_id=site_id, profile_id=profile_id, identities=identities)
    return identities


def _iso(v: Any) -> Any:
    return v.isoformat() + "Z" if isinstance(v, datetime) else v


def _rows(model, where, order_by) -> list[dict[str, Any]]:
    cols = [c for c in model.__table__.c if c.name not in ("site_id",)]
    return [
        {c.name: _iso(v) for c, v in zip(cols, row, strict=True)}
        for row in db.session.execute(select(*cols).where(where).order_by(order_by))
    ]


def export_profile(site_id: int, profile_id: int) -> dict[str, Any] | None:
    """Everything stored about a person, as JSON-able data (``None`` if unknown)."""
    profile = db.session.scalar(select(Profile).where(Profile.id == profile_id, Profile.site_id == site_id))
    if profile is None:
        return None
    from ..segments.models import ContactLog, ProfileScore, SegmentChange, SegmentMember

    out: dict[str, Any] = {
        "profile": {"id": profile.id, "email": profile.email, "customer_id": profile.customer_id,
                    "created_at": _iso(profile.created_at), "last_seen_at": _iso(profile.last_seen_at)},
        "identities": _rows(Identity, Identity.profile_id == profile_id, Identity.id),
        "attributes": {k: {**v, "updated_at": _iso(v["updated_at"])} for k, v in attributes_of(profile_id).items()},
        "events": _rows(Event, Event.profile_id == profile_id, Event.occurred_at),
        "orders": _rows(Order, Order.profile_id == profile_id, Order.occurred_at),
        "interactions": _rows(Interaction, Interaction.profile_id == profile_id, Interaction.occurred_at),
        "scores": (_rows(ProfileScore, ProfileScore.profile_id == profile_id, ProfileScore.profile_id) or [None])[0],
        "segments": _rows(SegmentMember, SegmentMember.profile_id == profile_id, SegmentMember.segment_id),
        "segment_changes": _rows(SegmentChange, SegmentChange.profile_id == profile_id, SegmentChange.id),
        "contact_log": _rows(ContactLog, ContactLog.profile_id == profile_id, ContactLog.id),
        "merged_profiles": _rows(ProfileMerge, ProfileMerge.kept_profile_id == profile_id, ProfileMerge.id),
    }
    # tables other packages add (connectors' engagement…) are included as they are
    known = {"identities", "profile_attributes", "events", "orders", "interactions", "profile_scores", "segment_members",
             "segment_changes", "contact_log", "profile_merges"}
    for table in db.metadata.sorted_tables:
        if table.name in known:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "profiles" and fk.column.name == "id":
                rows = db.session.execute(select(table).where(fk.parent == profile_id).limit(10_000)).mappings().all()
                if rows:
                    out.setdefault("other", {})[table.name] = [{k: _iso(v) for k, v in r.items()} for r in rows]
    return out


def timeline_summary(site_id: int, profile_id: int) -> dict[str, Any]:
    """Counts of events by type, with the first and last time of each, plus orders."""
    events = {
        t: {"count": n, "first_at": _iso(a), "last_at": _iso(b)}
        for t, n, a, b in db.session.execute(
            select(Event.type, func.count(), func.min(Event.occurred_at), func.max(Event.occurred_at))
            .where(Event.profile_id == profile_id).group_by(Event.type).order_by(Event.type)
        )
    }
    n, total, first, last = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Order.total), 0.0), func.min(Order.occurred_at), func.max(Order.occurred_at))
        .where(Order.site_id == site_id, Order.profile_id == profile_id)
    ).one()
    return {"events": events, "orders": {"count": n, "total": round(total, 2), "first_at": _iso(first), "last_at": _iso(last)}}
