"""The contact policy: at most N messages per contact per day / week on each channel.

Push code (email connectors…) asks before sending and records after::

    from personalize.segments.policy import allow, record

    if allow(site_id, profile_id, "email"):
        send(...)
        record(site_id, profile_id, "email")

Days and weeks are rolling windows (the last 24 hours, the last 7 days), so a
limit cannot be doubled around midnight. A profile whose attribute
``unsubscribed_<channel>`` is ``true`` is never allowed on that channel.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, select

from ..db import db
from ..models import utcnow
from ..profiles.models import ProfileAttribute
from ..validation import InvalidInput
from .models import ContactLog, ContactPolicy

CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DAY, WEEK = timedelta(days=1), timedelta(days=7)


def _check_channel(channel: str) -> None:
    if not isinstance(channel, str) or not CHANNEL_RE.match(channel):
        raise InvalidInput("channel", "channels are 1-32 lowercase letters, digits or _ (email, sms, push…)")


def set_policy(site_id: int, channel: str, limits: dict[str, Any]) -> None:
    """Set a channel's limits (``{"per_day": 1, "per_week": 3}``; ``null`` or absent = no limit). Commits."""
    _check_channel(channel)
    if not isinstance(limits, dict) or set(limits) - {"per_day", "per_week"}:
        raise InvalidInput(f"channels.{channel}", "must be an object with per_day and/or per_week")
    for key in ("per_day", "per_week"):
        v = limits.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10_000):
            raise InvalidInput(f"channels.{channel}.{key}", "must be a whole number from 0 to 10000, or null")
    row = db.session.scalar(select(ContactPolicy).where(ContactPolicy.site_id == site_id, ContactPolicy.channel == channel))
    if row is None:
        row = ContactPolicy(site_id=site_id, channel=channel)
        db.session.add(row)
    row.per_day, row.per_week = limits.get("per_day"), limits.get("per_week")
    db.session.commit()


def get_policies(site_id: int) -> dict[str, dict[str, int | None]]:
    rows = db.session.scalars(select(ContactPolicy).where(ContactPolicy.site_id == site_id).order_by(ContactPolicy.channel))
    return {r.channel: {"per_day": r.per_day, "per_week": r.per_week} for r in rows}


def allow(site_id: int, profile_id: int, channel: str, at: datetime | None = None) -> bool:
    """Whether one more message to this profile on ``channel`` at ``at`` (default now) keeps within the policy."""
    _check_channel(channel)
    at = at or utcnow()
    unsubscribed = db.session.scalar(select(ProfileAttribute.value).where(
        ProfileAttribute.profile_id == profile_id, ProfileAttribute.name == f"unsubscribed_{channel}"
    ))
    if unsubscribed is True:
        return False
    row = db.session.scalar(select(ContactPolicy).where(ContactPolicy.site_id == site_id, ContactPolicy.channel == channel))
    if row is None or (row.per_day is None and row.per_week is None):
        return True
    for limit, window in ((row.per_day, DAY), (row.per_week, WEEK)):
        if limit is None:
            continue
        sent = db.session.scalar(select(func.count()).select_from(ContactLog).where(
            ContactLog.profile_id == profile_id, ContactLog.channel == channel,
            ContactLog.sent_at > at - window, ContactLog.sent_at <= at,
        )) or 0
        if sent >= limit:
            return False
    return True


def sent_counts(site_id: int, profile_ids: list[int], channel: str, at: datetime) -> dict[int, tuple[int, int]]:
    """Messages each profile got on ``channel`` in the day and the week before ``at``: ``{id: (day, week)}``."""
    _check_channel(channel)
    out: dict[int, tuple[int, int]] = {}
    for start in range(0, len(profile_ids), 500):
        chunk = profile_ids[start : start + 500]
        rows = db.session.execute(
            select(ContactLog.profile_id, func.sum(case((ContactLog.sent_at > at - DAY, 1), else_=0)), func.count())
            .where(ContactLog.profile_id.in_(chunk), ContactLog.channel == channel, ContactLog.sent_at > at - WEEK, ContactLog.sent_at <= at)
            .group_by(ContactLog.profile_id)
        ).all()
        out.update({pid: (int(day or 0), int(week or 0)) for pid, day, week in rows})
    return out


def allow_many(site_id: int, profile_ids: list[int], channel: str, at: datetime | None = None) -> set[int]:
    """The profiles :func:`allow` would allow one more message on ``channel`` at ``at``, in a few queries."""
    _check_channel(channel)
    at = at or utcnow()
    ids = list(dict.fromkeys(profile_ids))
    refused: set[int] = set()
    for start in range(0, len(ids), 500):
        refused.update(db.session.scalars(select(ProfileAttribute.profile_id).where(
            ProfileAttribute.profile_id.in_(ids[start : start + 500]), ProfileAttribute.name == f"unsubscribed_{channel}",
            ProfileAttribute.vtype == "b", ProfileAttribute.value_text == "true",
        )))
    row = db.session.scalar(select(ContactPolicy).where(ContactPolicy.site_id == site_id, ContactPolicy.channel == channel))
    if row is not None and (row.per_day is not None or row.per_week is not None):
        for pid, (day, week) in sent_counts(site_id, [i for i in ids if i not in refused], channel, at).items():
            if (row.per_day is not None and day >= row.per_day) or (row.per_week is not None and week >= row.per_week):
                refused.add(pid)
    return {i for i in ids if i not in refused}


def limits(site_id: int, channel: str) -> tuple[int | None, int | None]:
    """The channel's ``(per_day, per_week)``; ``(None, None)`` when it has no limit."""
    row = db.session.scalar(select(ContactPolicy).where(ContactPolicy.site_id == site_id, ContactPolicy.channel == channel))
    return (row.per_day, row.per_week) if row is not None else (None, None)


def record(site_id: int, profile_id: int, channel: str, at: datetime | None = None, *, commit: bool = True) -> None:
    """Note that a message was sent (what :func:`allow` counts). Old entries (over 8 weeks) are pruned."""
    _check_channel(channel)
    at = at or utcnow()
    db.session.add(ContactLog(site_id=site_id, profile_id=profile_id, channel=channel, sent_at=at))
    db.session.execute(delete(ContactLog).where(ContactLog.profile_id == profile_id, ContactLog.sent_at < at - 8 * WEEK))
    if commit:
        db.session.commit()


def record_many(site_id: int, sent: list[tuple[int, str]], at: datetime) -> None:
    """:func:`record` for many ``(profile id, channel)`` at once, in the caller's transaction."""
    if not sent:
        return
    for _pid, channel in sent:
        _check_channel(channel)
    db.session.execute(ContactLog.__table__.insert(), [{"site_id": site_id, "profile_id": p, "channel": c, "sent_at": at} for p, c in sent])
    ids = sorted({p for p, _c in sent})
    for start in range(0, len(ids), 500):
        db.session.execute(delete(ContactLog).where(ContactLog.profile_id.in_(ids[start : start + 500]), ContactLog.sent_at < at - 8 * WEEK))
