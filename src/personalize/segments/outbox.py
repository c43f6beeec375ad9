"""Membership changes as events: the ``segment_changes`` outbox and the plugin hook.

Every change is stored (in the same transaction as the membership itself) with an
increasing id, so a connector can read ``changes_after(cursor)`` and never miss one;
plugins are also told at once through ``segment_membership_changed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ..db import db
from ..models import Identity
from ..plugins import hooks, notify
from ..records import SegmentChange as SegmentChangeRecord
from .models import Segment, SegmentChange

HOOK_BATCH = 1000


def identities_of(profile_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """Each profile's known ids by kind (``email``, ``customer_id``, connector ids), without visitor ids."""
    out: dict[int, dict[str, str]] = {}
    ids = list(profile_ids)
    for start in range(0, len(ids), 500):
        for pid, kind, value in db.session.execute(
            select(Identity.profile_id, Identity.kind, Identity.value)
            .where(Identity.profile_id.in_(ids[start : start + 500]), Identity.kind != "visitor").order_by(Identity.id)
        ):
            out.setdefault(pid, {}).setdefault(kind, value)
    return out


def _records(rows: list[tuple[int, int, bool, datetime]], keys: dict[int, str], idents: dict[int, dict[str, str]] | None = None) -> list[SegmentChangeRecord]:
    if idents is None:
        idents = identities_of({pid for _s, pid, _e, _t in rows})
    return [
        SegmentChangeRecord(segment=keys.get(s, ""), profile_id=pid, added=entered, identities=idents.get(pid, {}), segment_id=s, occurred_at=at)
        for s, pid, entered, at in rows
    ]


def wants_changes() -> bool:
    """Whether any plugin listens to ``segment_membership_changed`` (building records costs)."""
    return bool(hooks().segment_membership_changed.get_hookimpls())


def announce(
    site_id: int, rows: list[tuple[int, int, bool, datetime]], keys: dict[int, str] | None = None,
    identities: dict[int, dict[str, str]] | None = None,
) -> None:
    """Call ``segment_membership_changed`` with committed changes ``(segment id, profile id, entered, at)``.

    ``keys`` (segment id → key) and ``identities`` (as :func:`identities_of` gives them) save
    queries when the caller knows them.
    """
    if not rows or not wants_changes():
        return
    if keys is None:
        keys = dict(db.session.execute(select(Segment.id, Segment.key).where(Segment.site_id == site_id)).all())
    for start in range(0, len(rows), HOOK_BATCH):
        notify("segment_membership_changed", site_id=site_id, changes=_records(rows[start : start + HOOK_BATCH], keys, identities))


def announce_since(site_id: int, segment_id: int, after_id: int) -> None:
    """Announce the changes of one segment stored after change id ``after_id`` (after a bulk rebuild)."""
    if not wants_changes():
        return
    cursor = after_id
    while True:
        rows = db.session.execute(
            select(SegmentChange.id, SegmentChange.segment_id, SegmentChange.profile_id, SegmentChange.change, SegmentChange.at)
            .where(SegmentChange.site_id == site_id, SegmentChange.segment_id == segment_id, SegmentChange.id > cursor)
            .order_by(SegmentChange.id).limit(HOOK_BATCH)
        ).all()
        if not rows:
            return
        cursor = rows[-1][0]
        announce(site_id, [(s, p, c == "entered", at) for _i, s, p, c, at in rows])


def changes_after(site_id: int, after: int = 0, limit: int = 500, segment: str | None = None) -> list[dict[str, Any]]:
    """Stored changes with an id above ``after``, oldest first: the connectors' feed."""
    q = (
        select(SegmentChange.id, Segment.key, SegmentChange.profile_id, SegmentChange.change, SegmentChange.at)
        .join(Segment, Segment.id == SegmentChange.segment_id)
        .where(SegmentChange.site_id == site_id, SegmentChange.id > after)
    )
    if segment is not None:
        q = q.where(Segment.key == segment)
    rows = db.session.execute(q.order_by(SegmentChange.id).limit(limit)).all()
    idents = identities_of({r[2] for r in rows})
    return [
        {"id": i, "segment": key, "profile_id": pid, "change": change, "at": at.isoformat() + "Z", "identities": idents.get(pid, {})}
        for i, key, pid, change, at in rows
    ]
