"""Demographic, geographic and technographic facts derived from what a profile sends.

* from the request that delivered events: ``device`` (mobile / tablet / desktop),
  ``os``, ``browser`` (from the User-Agent) and ``language`` (Accept-Language);
* from orders: ``country`` (the most frequent order country).

They are ordinary attributes (source ``events`` or ``orders``), so rules use them
as ``attributes.device`` and a connector's fresher value wins over them.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from datetime import datetime
from functools import lru_cache

from sqlalchemy import bindparam, func, insert, select, update

from ..db import db, insert_ignoring_conflicts
from ..models import Order
from .attributes import attribute_values, set_attributes, typed
from .models import ProfileAttribute

_OS = (("Android", "android"), ("iPhone", "ios"), ("iPad", "ios"), ("Windows", "windows"), ("Mac OS X", "macos"), ("CrOS", "chromeos"), ("Linux", "linux"))
_BROWSERS = (("Edg/", "edge"), ("OPR/", "opera"), ("Firefox/", "firefox"), ("Chrome/", "chrome"), ("Safari/", "safari"))
_LANG = re.compile(r"^\s*([A-Za-z]{2,3})(?:-([A-Za-z]{2}))?")


def device_facts(user_agent: str | None, accept_language: str | None = None) -> dict[str, str]:
    """What a User-Agent and Accept-Language say about the device (only what they say clearly)."""
    return dict(_parsed(user_agent or "", accept_language or ""))


@lru_cache(maxsize=512)  # a shop's visitors send a few hundred distinct header pairs, every batch one of them
def _parsed(user_agent: str, accept_language: str) -> tuple[tuple[str, str], ...]:
    return tuple(_parse(user_agent, accept_language).items())


def _parse(user_agent: str, accept_language: str) -> dict[str, str]:
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


class KnownFacts:
    """Per process: the device facts last seen stored for a profile, for a short while.

    Nearly every event batch carries the same headers as the profile's previous one;
    remembering what was stored spares the group's writer a query to find that out.
    Bounded in size and age, so a value changed elsewhere (another process, the API,
    a connector) is noticed within ``max_age`` seconds.
    """

    def __init__(self, size: int = 20_000, max_age: float = 60.0):
        self.size, self.max_age = size, max_age
        self._facts: OrderedDict[int, tuple[float, tuple]] = OrderedDict()
        self._lock = threading.Lock()

    def same(self, profile_id: int, facts: tuple) -> bool:
        with self._lock:
            entry = self._facts.get(profile_id)
        return entry is not None and entry[1] == facts and entry[0] > time.monotonic()

    def remember(self, profile_ids, facts: tuple) -> None:
        until = time.monotonic() + self.max_age
        with self._lock:
            for pid in profile_ids:
                self._facts[pid] = (until, facts)
                self._facts.move_to_end(pid)
            while len(self._facts) > self.size:
                self._facts.popitem(last=False)

    def forget(self, profile_ids) -> None:
        with self._lock:
            for pid in profile_ids:
                self._facts.pop(pid, None)


_STORED = select(ProfileAttribute.profile_id, ProfileAttribute.name, ProfileAttribute.value).where(
    ProfileAttribute.profile_id.in_(bindparam("ids", expanding=True)), ProfileAttribute.name.in_(bindparam("names", expanding=True))
)


def fact_rows(site_id: int, profile_id: int, facts: dict[str, str], at: datetime) -> list[dict]:
    """``profile_attributes`` rows for device facts of a profile that has none yet (source ``events``)."""
    return [
        {"site_id": site_id, "profile_id": profile_id, "name": name, "value": value, "vtype": vtype,
         "value_text": text, "value_num": num, "source": "events", "updated_at": at}
        for name, value in facts.items()
        for vtype, text, num in (typed(value),)
    ]


def insert_new_profiles_facts(rows: list[dict]) -> None:
    """Insert :func:`fact_rows` of new profiles (a row another process wrote first is kept); no commit."""
    if rows:
        insert_ignoring_conflicts(ProfileAttribute, rows, ["profile_id", "name"])


def record_facts_of_group(
    site_id: int, wanted: list[tuple[list[int], dict[str, str]]], done: dict[int, tuple], known: KnownFacts, at: datetime
) -> bool:
    """Store device facts for a group of requests (each: its profiles and its headers' facts).

    Profiles in ``done`` (new ones whose facts went in with the events, by the facts written) and those
    ``known`` to hold them (seen stored moments ago by this process) cost nothing; the rest are compared with
    what is stored (one query) and only differing values go through :func:`set_attributes`.
    Does not commit; returns whether anything was written. Call :func:`remember_facts`
    with the same ``wanted`` after the commit.
    """
    unknown: dict[int, dict[str, str]] = {}
    for profile_ids, facts in wanted:
        if not facts:
            continue
        key = tuple(sorted(facts.items()))
        for pid in profile_ids:
            if (done.get(pid) == key and pid not in unknown) or known.same(pid, key):
                continue
            unknown.setdefault(pid, {}).update(facts)
    written = False
    if unknown:
        names = sorted({name for facts in unknown.values() for name in facts})
        stored: dict[int, dict[str, object]] = {}
        for pid, name, value in db.session.connection().execute(_STORED, {"ids": list(unknown), "names": names}):
            stored.setdefault(pid, {})[name] = value
        for pid, facts in unknown.items():
            have = stored.get(pid, {})
            differ = {k: v for k, v in facts.items() if have.get(k) != v}
            if differ and set_attributes(site_id, pid, differ, "events", at, commit=False):
                written = True
    return written


def remember_facts(wanted: list[tuple[list[int], dict[str, str]]], known: KnownFacts) -> None:
    """After the commit of :func:`record_facts_of_group`: these profiles hold these facts now."""
    for profile_ids, facts in wanted:
        if facts:
            known.remember(profile_ids, tuple(sorted(facts.items())))


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
