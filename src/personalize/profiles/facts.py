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

from sqlalchemy import func, select

from ..db import db
from ..models import Order
from .attributes import attribute_values, set_attributes

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
    """Set each customer's ``country`` attribute to their most frequent order country; commits."""
    rows = db.session.execute(
        select(Order.profile_id, Order.country, func.count())
        .where(Order.site_id == site_id, Order.profile_id.is_not(None), Order.country != "")
        .group_by(Order.profile_id, Order.country)
    ).all()
    best: dict[int, tuple[int, str]] = {}
    for pid, country, n in rows:
        if pid not in best or (n, country) > best[pid]:
            best[pid] = (n, country)
    current = attribute_values(list(best))
    n = 0
    for pid, (_count, country) in best.items():
        if current.get(pid, {}).get("country") != country:
            set_attributes(site_id, pid, {"country": country}, "orders", at, commit=False)
            n += 1
    db.session.commit()
    return n
