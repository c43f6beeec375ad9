"""Pressure and consent: what each action checks about a person before it acts.

In order: the control group never gets an action; consent (email: see
:func:`personalize.journeys.email.email_consent`; any channel: ``unsubscribed_<channel>``);
quiet hours in the person's time zone (the profile attribute ``timezone``, else the
site's) delay the action to their end; "skip if contacted in the last N hours" (any
channel); the site's contact policy caps per channel (:mod:`personalize.segments.policy`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from ..db import db
from ..models import Identity, Order, Profile
from ..profiles.models import ProfileAttribute
from ..segments.models import ContactLog
from .email import Contact, zone

UTC = ZoneInfo("UTC")
#: the attributes actions look at (consent, time zone, names for templates)
CONTACT_ATTRIBUTES = (
    "unsubscribed_email", "email_consent", "email_status", "email_marketing", "timezone", "first_name", "last_name",
    "name", "language",
)


def load_contacts(site_id: int, profile_ids: list[int], attributes: bool | tuple[str, ...] = True) -> dict[int, Contact]:
    """What actions need of each profile: email, a few attributes (all of them with
    ``attributes=True``), the number of orders and the newest visitor id."""
    ids = list(dict.fromkeys(profile_ids))
    out: dict[int, Contact] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for pid, email, customer in db.session.execute(select(Profile.id, Profile.email, Profile.customer_id).where(Profile.id.in_(chunk), Profile.site_id == site_id)):
            out[pid] = Contact(pid, email, customer_id=customer)
        for pid, kind, value in db.session.execute(
            select(Identity.profile_id, Identity.kind, Identity.value).where(Identity.profile_id.in_(chunk), Identity.kind.in_(("email", "visitor"))).order_by(Identity.id)
        ):
            contact = out.get(pid)
            if contact is None:
                continue
            if kind == "email" and not contact.email:
                contact.email = value
            elif kind == "visitor":
                contact.visitor = value  # the newest one wins
        q = select(ProfileAttribute.profile_id, ProfileAttribute.name, ProfileAttribute.value).where(ProfileAttribute.profile_id.in_(chunk))
        if attributes is not True:
            q = q.where(ProfileAttribute.name.in_(attributes or CONTACT_ATTRIBUTES))
        for pid, name, value in db.session.execute(q):
            if pid in out:
                out[pid].attributes[name] = value
        for pid, n in db.session.execute(
            select(Order.profile_id, func.count()).where(Order.site_id == site_id, Order.profile_id.in_(chunk)).group_by(Order.profile_id)
        ):
            if pid in out:
                out[pid].orders = n
    return out


def contact_zone(contact: Contact | None, site_zone: str) -> ZoneInfo:
    """The person's time zone: their ``timezone`` attribute when it names one, else the site's."""
    if contact is not None:
        mine = zone(contact.attributes.get("timezone"))
        if mine is not None:
            return mine
    return zone(site_zone) or UTC


def local(now: datetime, tz: ZoneInfo) -> datetime:
    """A naive UTC time as the wall-clock time in ``tz``."""
    return now.replace(tzinfo=UTC).astimezone(tz)


def to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def next_local_time(now: datetime, at: str, tz: ZoneInfo) -> datetime:
    """The next moment (naive UTC, after ``now``) the clock shows ``at`` (HH:MM) in ``tz``.

    A time skipped by a daylight-saving change happens at the first minute after it.
    """
    here = local(now, tz)
    wanted = _clock(at)
    for days in range(0, 3):
        day = (here + timedelta(days=days)).date()
        candidate = datetime.combine(day, wanted, tzinfo=tz)
        # a wall time that does not exist (spring forward) is normalised by the round trip
        candidate = candidate.astimezone(UTC).astimezone(tz)
        if to_utc(candidate) > now:
            return to_utc(candidate)
    raise AssertionError("a time of day comes within two days")


def quiet_until(now: datetime, limits: dict[str, Any], tz: ZoneInfo) -> datetime | None:
    """When the quiet hours around ``now`` end in ``tz`` (naive UTC), or None outside them."""
    start, end = limits.get("quiet_start"), limits.get("quiet_end")
    if not start or not end:
        return None
    clock = local(now, tz).time().replace(second=0, microsecond=0)
    s, e = _clock(start), _clock(end)
    inside = (s <= clock < e) if s < e else (clock >= s or clock < e)
    return next_local_time(now, end, tz) if inside else None


def recently_contacted(profile_ids: list[int], hours: int, now: datetime) -> set[int]:
    """Profiles that got any message (any channel) in the ``hours`` before ``now``."""
    if hours <= 0 or not profile_ids:
        return set()
    out: set[int] = set()
    ids = list(dict.fromkeys(profile_ids))
    for start in range(0, len(ids), 500):
        out.update(db.session.scalars(
            select(ContactLog.profile_id).where(
                ContactLog.profile_id.in_(ids[start : start + 500]), ContactLog.sent_at > now - timedelta(hours=hours), ContactLog.sent_at <= now,
            ).distinct()
        ))
    return out
