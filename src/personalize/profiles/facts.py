"""Demographic, geographic and technographic facts derived from what a profile sends.

* from the request that delivered events: ``device`` (mobile / tablet / desktop),
  ``os``, ``browser`` (from the User-Agent) and ``language`` (Accept-Language);
* from orders: ``country`` (the most frequent order country).

They are ordinary attributes (source ``events`` or ``orders``), so rules use them
as ``attributes.device`` and a connector's fresher value wins over them.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update

from ..db import db
from ..models import Order
from .attributes import attribute_values, set_attributes
from .models import ProfileAttribute

_OS = (("Android", "android"), ("iPhone", "ios"), ("iPad", "ios"), ("Windows", "windows"), ("Mac OS X", "macos"), ("CrOS", "chromeos"), ("Linux", "linux"))
_BROWSERS = (("Edg/", "edge"), ("OPR/", "opera"), ("Firefox/", "firefox"), ("Chrome/", "chrome"), ("Safari/", "safari"))
_LANG = re.compile(r"^\s*([A-Za-z]{2,3})(?:-([A-Za-z]{2}))?")


def device_facts(user_agent: str | None, accept_language: str | None = None) -> dict[str, str]:
    """What a User-Agent and Accept-Language say about the device (only what they say clearly)."""
    out: dict[str, str] = {}
    ua = user_agent or ""
    if ua:
        if "iPad" in ua or "Tablet" in ua or ("Android" in ua and "Mobile" not in ua):
            out["device"] = "tablet"
        elif "Mobi" in ua or "iPhone" in ua:
            out["device"] = "mobile"
        elif any(k in ua for k in ("Windows", "Macintosh", "X11", "CrOS")):
            out["device"] = "desktop"
        for needle, name in _OS:
            if needle in ua:
                out["os"] = name
                break
        for needle, name in _BROWSERS:
            if needle in ua:
                out["browser"] = name
                break
    m = _LANG.match(accept_language or "")
    if m:
        out["language"] = m.group(1).lower()
    return out


def record_device_facts(site_id: int, profile_ids: list[int], facts: dict[str, str], at: datetime) -> list[int]:
    """Store device facts for profiles whose stored ones differ (no write when nothing changed).

    Does not commit; returns the profiles that changed.
    """
    if not facts:
        return []
    current = attribute_values(profile_ids)
    changed = []
    for pid in profile_ids:
        have = current.get(pid, {})
        fresh = {k: v for k, v in facts.items() if have.get(k) != v}
        if fresh and set_attributes(site_id, pid, fresh, "events", at, commit=False):
            changed.append(pid)
    return changed


def country_facts(site_id: int, at: datetime) -> int:
    """Set each customer's ``country`` attribute to their most frequent order country, unless a
    newer value is stored (the usual merge rule), in two bulk statements; commits. Returns how many changed."""
    rows = db.session.execute(
        select(Order.profile_id, Order.country, func.count())
        .where(Order.site_id == site_id, Order.profile_id.is_not(None), Order.country != "")
        .group_by(Order.profile_id, Order.country)
    ).all()
    best: dict[int, tuple[int, str]] = {}
    for pid, country, n in rows:
        if pid not in best or (n, country) > best[pid]:
            best[pid] = (n, country)
    stored = {
        pid: (rid, value, updated)
        for rid, pid, value, updated in db.session.execute(
            select(ProfileAttribute.id, ProfileAttribute.profile_id, ProfileAttribute.value, ProfileAttribute.updated_at)
            .where(ProfileAttribute.site_id == site_id, ProfileAttribute.name == "country")
        )
    }
    inserts, updates = [], []
    for pid, (_n, country) in best.items():
        old = stored.get(pid)
        if old is None:
            inserts.append({"site_id": site_id, "profile_id": pid, "name": "country", "value": country, "vtype": "s",
                            "value_text": country, "value_num": None, "source": "orders", "updated_at": at})
        elif old[1] != country and old[2] < at:
            updates.append({"rid": old[0], "value": country, "value_text": country, "at": at})
    if inserts:
        db.session.execute(insert(ProfileAttribute), inserts)
    if updates:
        db.session.execute(
            update(ProfileAttribute.__table__).where(ProfileAttribute.__table__.c.id == bindparam("rid"))
            .values(value=bindparam("value"), vtype="s", value_text=bindparam("value_text"), value_num=None, source="orders", updated_at=bindparam("at")),
            updates,
        )
    db.session.commit()
    return len(inserts) + len(updates)
