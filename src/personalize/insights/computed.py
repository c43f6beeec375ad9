"""Sizes of the computed segments (RFM classes, value/attrition/potential bands, clusters),
and the attribute names in use: what the admin's segment pages show beside the rule builder."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ..db import db
from ..profiles.models import ProfileAttribute
from ..segments.models import ProfileScore

ATTRITION_BANDS = (("likely to stay", 0.0, 0.3), ("at risk", 0.3, 0.7), ("likely lost", 0.7, 1.01))
PROPENSITY_BANDS = (("likely (50 % or more)", 0.5, 1.01), ("possible (20 to 50 %)", 0.2, 0.5), ("unlikely (under 20 %)", 0.0, 0.2))


def computed_segments(site_id: int) -> dict[str, Any]:
    """``{"customers", "computed_at", "rfm": [(name, n)], "clusters": [(name, n)], "attrition": [(band, n)],
    "value": {"mean", "total"}, "potential": {"mean"}, "ordering": {"scored", "expected", "bands": [(band, n)]}}``;
    ``customers`` is 0 before scores are computed."""
    where = ProfileScore.site_id == site_id
    n, computed_at, mean_value, total_value, mean_potential, with_propensity, expected_orders = db.session.execute(
        select(func.count(), func.max(ProfileScore.computed_at), func.avg(ProfileScore.value),
               func.coalesce(func.sum(ProfileScore.value), 0.0), func.avg(ProfileScore.potential),
               func.count(ProfileScore.order_propensity), func.coalesce(func.sum(ProfileScore.order_propensity), 0.0)).where(where)
    ).one()

    def sizes(column) -> list[tuple[str, int]]:
        rows = db.session.execute(select(column, func.count()).where(where).group_by(column).order_by(func.count().desc(), column)).all()
        return [(str(name), int(count)) for name, count in rows]

    attrition = []
    for band, low, high in ATTRITION_BANDS:
        count = db.session.scalar(
            select(func.count()).select_from(ProfileScore).where(where, ProfileScore.attrition >= low, ProfileScore.attrition < high)
        )
        attrition.append((band, int(count or 0)))
    ordering = []
    for band, low, high in PROPENSITY_BANDS:
        count = db.session.scalar(
            select(func.count()).select_from(ProfileScore)
            .where(where, ProfileScore.order_propensity >= low, ProfileScore.order_propensity < high)
        )
        ordering.append((band, int(count or 0)))
    return {
        "customers": int(n or 0), "computed_at": computed_at, "rfm": sizes(ProfileScore.rfm_segment),
        "clusters": sizes(ProfileScore.cluster_name), "attrition": attrition,
        "value": {"mean": float(mean_value or 0.0), "total": float(total_value or 0.0)},
        "potential": {"mean": float(mean_potential or 0.0)},
        # the sum of the chances is how many customers are expected to order (a calibrated model's promise)
        "ordering": {"scored": int(with_propensity or 0), "expected": float(expected_orders or 0.0), "bands": ordering},
    }


def attribute_names(site_id: int, limit: int = 200) -> list[str]:
    """The profile attribute names stored for a site, for the rule builder's field list."""
    from ..models import Profile

    return list(db.session.scalars(
        select(ProfileAttribute.name).join(Profile, Profile.id == ProfileAttribute.profile_id)
        .where(Profile.site_id == site_id).group_by(ProfileAttribute.name).order_by(ProfileAttribute.name).limit(limit)
    ))


def recent_profiles(site_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The people seen most recently, for the profiles page."""
    from ..models import Profile

    rows = db.session.execute(
        select(Profile.id, Profile.email, Profile.customer_id, Profile.last_seen_at)
        .where(Profile.site_id == site_id).order_by(Profile.last_seen_at.desc(), Profile.id.desc()).limit(limit)
    ).all()
    return [{"id": i, "email": e, "customer_id": c, "last_seen_at": t} for i, e, c, t in rows]


def recent_events(site_id: int, profile_id: int, limit: int = 30) -> list[dict[str, Any]]:
    """A profile's newest events, newest first: the timeline of the 360° view."""
    from ..models import Event

    rows = db.session.execute(
        select(Event.type, Event.product_id, Event.rec_id, Event.slot, Event.url, Event.properties, Event.occurred_at)
        .where(Event.site_id == site_id, Event.profile_id == profile_id)
        .order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit)
    ).all()
    return [{"type": t, "product_id": p, "rec_id": r, "slot": s, "url": u, "properties": props or {}, "at": at} for t, p, r, s, u, props, at in rows]


def profile_scores(profile_id: int) -> dict[str, Any] | None:
    """A profile's computed scores, or None before they are computed."""
    row = db.session.get(ProfileScore, profile_id)
    if row is None:
        return None
    return {c.name: getattr(row, c.name) for c in ProfileScore.__table__.columns if c.name not in ("profile_id", "site_id")}
