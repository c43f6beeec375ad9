"""Merging two profiles that proved to be one person, and resolving a contact from another system.

Merges happen only on a trusted signal (a valid signature or token, a connector
record, a secret-key API call) and at most :data:`MAX_MERGES` times into one profile,
so a leaked identity cannot funnel everyone's history into one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from ..db import db, insert_ignoring_conflicts
from ..models import Identity, Profile, utcnow
from .attributes import set_attributes
from .identity import CUSTOMER, EMAIL, lookup, profiles_for
from .models import ProfileAttribute, ProfileMerge

MAX_MERGES = 20
SIGNALS = ("signature", "token", "connector", "api")
# Rows the merge itself reconciles; every other table pointing at profiles is re-pointed as is.
SPECIAL = {"profile_attributes", "profile_merges", "profile_scores", "segment_members", "segment_changes"}


class MergeRefused(Exception):
    """The merge would exceed the bound, or crosses sites."""


def resolve_profile_id(site_id: int, profile_id: int) -> int | None:
    """The live profile for an id, following merges (``None`` if unknown or erased)."""
    if db.session.scalar(select(Profile.id).where(Profile.id == profile_id, Profile.site_id == site_id)) is not None:
        return profile_id
    return db.session.scalar(
        select(ProfileMerge.kept_profile_id).where(ProfileMerge.site_id == site_id, ProfileMerge.merged_profile_id == profile_id)
        .order_by(ProfileMerge.id.desc()).limit(1)
    )


def merge_count(profile_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(ProfileMerge).where(ProfileMerge.kept_profile_id == profile_id)) or 0


def merge_profiles(site_id: int, keep: int, gone: int, signal: str) -> dict[str, int]:
    """Fold profile ``gone`` into ``keep`` in one transaction, then update segments and tell plugins.

    Every row pointing at ``gone`` (events, interactions, orders, identities, contact
    log, connector rows…) is re-pointed, so nothing is lost or counted twice.
    Attributes follow the newest-wins rule. Returns the number of rows moved per table.

    :raises MergeRefused: beyond :data:`MAX_MERGES`, or when a profile is not of this site.
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}")
    if keep == gone:
        return {}
    kept, merged = db.session.get(Profile, keep), db.session.get(Profile, gone)
    if kept is None or merged is None or kept.site_id != site_id or merged.site_id != site_id:
        raise MergeRefused("both profiles must exist and belong to the site")
    if merge_count(keep) + merge_count(gone) >= MAX_MERGES:
        raise MergeRefused(f"profile {keep} has reached the limit of {MAX_MERGES} merges")
    moved: dict[str, int] = {}
    try:
        for table in db.metadata.sorted_tables:
            if table.name in SPECIAL:
                continue
            for fk in table.foreign_keys:
                if fk.column.table.name == "profiles" and fk.column.name == "id":
                    col = fk.parent
                    n = db.session.execute(update(table).where(col == gone).values({col.name: keep})).rowcount
                    if n:
                        moved[table.name] = moved.get(table.name, 0) + n
        _merge_attributes(site_id, keep, gone)
        db.session.execute(update(ProfileMerge).where(ProfileMerge.kept_profile_id == gone).values(kept_profile_id=keep))
        if not kept.email and merged.email:
            kept.email = merged.email
        if not kept.customer_id and merged.customer_id:
            kept.customer_id = merged.customer_id
        kept.created_at = min(kept.created_at, merged.created_at)
        kept.last_seen_at = max(kept.last_seen_at, merged.last_seen_at)
        db.session.add(ProfileMerge(site_id=site_id, kept_profile_id=keep, merged_profile_id=gone, signal=signal, moved=moved))
        db.session.flush()
        db.session.delete(merged)  # its scores, memberships and outbox rows go with it
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    from ..plugins import notify

    notify("profiles_changed", site_id=site_id, profile_ids=[keep])
    notify("profiles_merged", site_id=site_id, kept_profile_id=keep, merged_profile_id=gone, signal=signal)
    return moved


def _merge_attributes(site_id: int, keep: int, gone: int) -> None:
    theirs = {a.name: a for a in db.session.scalars(select(ProfileAttribute).where(ProfileAttribute.profile_id == gone))}
    if not theirs:
        return
    ours = {a.name: a for a in db.session.scalars(select(ProfileAttribute).where(ProfileAttribute.profile_id == keep, ProfileAttribute.name.in_(list(theirs))))}
    for name, attr in theirs.items():
        mine = ours.get(name)
        if mine is None:
            attr.profile_id = keep
        elif attr.updated_at > mine.updated_at:
            mine.value, mine.vtype, mine.value_text, mine.value_num = attr.value, attr.vtype, attr.value_text, attr.value_num
            mine.source, mine.updated_at = attr.source, attr.updated_at
    db.session.flush()
    db.session.execute(delete(ProfileAttribute).where(ProfileAttribute.profile_id == gone))


def link_identity(site_id: int, profile_id: int, signal: str, *, email: str | None = None, customer_id: str | None = None) -> int:
    """Prove that ``profile_id`` (e.g. an anonymous visitor's) is the person with this email / customer id.

    If another profile already holds the identity, the visitor's profile is merged
    into it (the known customer's profile stays); otherwise the identity is attached.
    Returns the profile id the person ends up with.
    """
    target = profile_id
    for kind, value in ((CUSTOMER, customer_id), (EMAIL, email)):
        if not value:
            continue
        owner = _attach(site_id, kind, value, target)
        if owner != target:
            try:
                merge_profiles(site_id, owner, target, signal)
                target = owner
            except MergeRefused:
                continue
    _fill_columns(target, email, customer_id)
    return target


def _attach(site_id: int, kind: str, value: str, profile_id: int) -> int:
    """Give the identity to ``profile_id`` unless a profile holds it already; returns its holder."""
    insert_ignoring_conflicts(Identity, [{"site_id": site_id, "kind": kind, "value": value, "profile_id": profile_id, "created_at": utcnow()}], ["site_id", "kind", "value"])
    db.session.commit()
    return lookup(site_id, kind, [value])[value]


def _fill_columns(profile_id: int, email: str | None, customer_id: str | None) -> None:
    profile = db.session.get(Profile, profile_id)
    if email and not profile.email:
        profile.email = email
    if customer_id and not profile.customer_id:
        profile.customer_id = customer_id
    db.session.commit()


def resolve_contact(
    site_id: int, *, email: str | None = None, customer_id: str | None = None, ids: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None, source: str = "connector", at: datetime | None = None,
) -> int:
    """The profile of a contact from a trusted server-side source (a connector record).

    Looks the contact up by every id given (``email``, ``customer_id`` and connector
    ids such as ``{"hubspot_id": "123"}``), creates it if unknown, merges profiles that
    turn out to be the same person (bounded), records the ids, and merges the
    attributes (newest wins). Commits.
    """
    idents = [(k, v) for k, v in ((EMAIL, (email or "").strip().lower() or None), (CUSTOMER, customer_id)) if v]
    idents += [(k, str(v)) for k, v in (ids or {}).items() if v]
    if not idents:
        raise ValueError("a contact needs at least one id")
    owners = []
    for kind, value in idents:
        owner = lookup(site_id, kind, [value]).get(value)
        if owner is not None and owner not in owners:
            owners.append(owner)
    if owners:
        target = owners[0]
    else:
        kind, value = idents[0]
        target = profiles_for(site_id, kind, [value])[value]
        db.session.commit()
    for other in owners[1:]:
        with contextlib.suppress(MergeRefused):
            merge_profiles(site_id, target, other, "connector")
    for kind, value in idents:
        owner = _attach(site_id, kind, value, target)
        if owner != target:
            with contextlib.suppress(MergeRefused):
                merge_profiles(site_id, target, owner, "connector")
    _fill_columns(target, dict(idents).get(EMAIL), customer_id)
    if attributes:
        set_attributes(site_id, target, attributes, source, at)
    return target
