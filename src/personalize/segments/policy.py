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

from sqlalchemy import delete, func, select

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


def record(site_id: int, profile_id: int, channel: str, at: datetime | None = None, *, commit: bool = True) -> None:
    """Note that a message was sent (what :func:`allow` counts). Old entries (over 8 weeks) are pruned."""
    _check_channel(channel)
    at = at or utcnow()
    db.session.add(ContactLog(site_id=site_id, profile_id=profile_id, channel=channel, sent_at=at))
    db.session.execute(delete(ContactLog).where(ContactLog.profile_id == profile_id, ContactLog.sent_at < at - 8 * WEEK))
    if commit:
        db.session.commit()
