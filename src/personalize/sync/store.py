"""Turning connector records into the single customer view.

Contacts are resolved to profiles by their remote id (stored as an identity of the
connector's own kind, such as ``hubspot_id``) and by email: a known remote id wins,
else a known email, else a new profile. The missing identity is then linked to that
profile when no other profile holds it; when the two point to different profiles
they are left apart (merging is the profiles service's decision) and counted.

Attributes go through :func:`personalize.profiles.attributes.set_attributes` (the
newest value wins, with the connector as source), products through
:func:`personalize.catalog.upsert_products`, orders through
:func:`personalize.profiles.import_orders` (idempotent by order id), engagement into
its own table (idempotent by the source's id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..catalog import upsert_products
from ..db import db, insert_ignoring_conflicts
from ..models import Identity, Profile, utcnow
from ..profiles import import_orders
from ..profiles.attributes import check_attributes, set_attributes
from ..profiles.identity import EMAIL, lookup, profiles_for
from ..records import ContactRecord, EngagementRecord, OrderRecord, ProductRecord
from ..validation import InvalidInput
from .models import Engagement


@dataclass
class StoreResult:
    stored: int = 0
    skipped: list[str] = field(default_factory=list)
    conflicts: int = 0
    profiles: set[int] = field(default_factory=set)


def normalise_email(value: str) -> str:
    value = (value or "").strip()
    if "@" not in value or " " in value or len(value) > 320:
        return ""
    local, _, domain = value.rpartition("@")
    # every provider we speak to treats addresses case-insensitively (Mailchimp hashes the lower-cased one)
    return value.lower() if local and "." in domain else ""


def apply_mapping(raw: dict[str, Any], mapping: dict[str, str | None]) -> dict[str, Any]:
    """Remote fields -> profile attributes: only mapped fields are kept; a ``None`` target drops one.

    A mapping ``{"*": "*"}`` keeps every field not mapped otherwise under its own name.
    """
    keep_rest = mapping.get("*") == "*"
    out = {}
    for remote, value in raw.items():
        target = mapping.get(remote, remote if keep_rest else None)
        if target:
            out[target] = value
    return out


def link_identity(site_id: int, profile_id: int, kind: str, value: str) -> int:
    """Give ``profile_id`` the identity ``kind:value`` unless another profile holds it; return its holder."""
    insert_ignoring_conflicts(
        Identity, [{"site_id": site_id, "kind": kind, "value": value, "profile_id": profile_id, "created_at": utcnow()}],
        ["site_id", "kind", "value"],
    )
    return lookup(site_id, kind, [value])[value]


@dataclass
class KnownIds:
    """Identities already looked up for a batch (``kind -> value -> profile``), kept current as it goes."""

    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def prefetch(self, site_id: int, kind: str, values: Iterable[str]) -> None:
        values = [v for v in values if v]
        if kind and values:
            self.by_kind.setdefault(kind, {}).update(lookup(site_id, kind, values))

    def get(self, site_id: int, kind: str, value: str) -> int | None:
        known = self.by_kind.setdefault(kind, {})
        if value not in known:
            found = lookup(site_id, kind, [value]).get(value)
            if found is None:
                return None
            known[value] = found
        return known[value]

    def remember(self, kind: str, value: str, profile_id: int) -> None:
        self.by_kind.setdefault(kind, {})[value] = profile_id


def resolve_contact(site_id: int, kind: str, external_id: str, email: str, result: StoreResult, known: KnownIds | None = None) -> int:
    """The profile of a remote contact, creating or linking identities as described above."""
    known = known or KnownIds()
    by_id = known.get(site_id, kind, external_id) if external_id and kind else None
    by_email = known.get(site_id, EMAIL, email) if email else None
    if by_id is not None:
        pid = by_id
    elif by_email is not None:
        pid = by_email
    elif email:
        pid = profiles_for(site_id, EMAIL, [email], attrs={email: {"email": email}})[email]
        by_email = pid
        known.remember(EMAIL, email, pid)
    else:
        pid = profiles_for(site_id, kind, [external_id])[external_id]
        by_id = pid
        known.remember(kind, external_id, pid)
    if external_id and kind and by_id is None:
        holder = link_identity(site_id, pid, kind, external_id)
        known.remember(kind, external_id, holder)
        if holder != pid:
            result.conflicts += 1
    if email and by_email is None:
        holder = link_identity(site_id, pid, EMAIL, email)
        known.remember(EMAIL, email, holder)
        if holder != pid:
            result.conflicts += 1
        else:
            profile = db.session.get(Profile, pid)
            if profile is not None and not profile.email:
                profile.email = email
    elif email and by_email != pid:
        result.conflicts += 1
    return pid


def store_contacts(site_id: int, source: str, kind: str, mapping: dict[str, str | None], records: Iterable[ContactRecord]) -> StoreResult:
    """Resolve each contact to a profile and merge its mapped attributes (no commit)."""
    result = StoreResult()
    records = list(records)
    known = KnownIds()  # two queries for the batch instead of two per contact
    known.prefetch(site_id, kind, [str(r.external_id or "").strip() for r in records])
    known.prefetch(site_id, EMAIL, [normalise_email(r.email) for r in records])
    for rec in records:
        email = normalise_email(rec.email)
        external_id = str(rec.external_id or "").strip()
        if not email and not external_id:
            result.skipped.append(f"contact without email or id{_key(rec.external_id)}")
            continue
        try:
            attrs = check_attributes(apply_mapping(dict(rec.attributes), mapping))
        except InvalidInput as exc:  # checked before anything is written for this contact
            result.skipped.append(f"contact {external_id or email}: {exc}")
            continue
        pid = resolve_contact(site_id, kind, external_id, email, result, known)
        set_attributes(site_id, pid, attrs, source, rec.updated_at or utcnow(), commit=False)
        result.profiles.add(pid)
        result.stored += 1
    return result


def store_products(site_id: int, records: list[ProductRecord]) -> StoreResult:
    result = StoreResult()
    good = []
    for rec in records:
        if not rec.id or not rec.title:
            result.skipped.append(f"product without id or title{_key(rec.id)}")
        else:
            good.append(rec)
    if good:
        upsert_products(site_id, good, commit=False)
    result.stored = len(good)
    return result


def store_orders(site_id: int, records: list[OrderRecord]) -> StoreResult:
    """Orders by id, once. ``import_orders`` commits; it is called at a checkpoint, after the rest."""
    result = StoreResult()
    good = []
    for rec in records:
        if not rec.id or not rec.lines:
            result.skipped.append(f"order without id or lines{_key(rec.id)}")
        else:
            good.append(rec)
    if good:
        import_orders(site_id, good)
    result.stored = len(good)
    return result


def store_engagement(site_id: int, source: str, kind: str, records: list[EngagementRecord]) -> StoreResult:
    result = StoreResult()
    rows = []
    known = KnownIds()
    known.prefetch(site_id, kind, [str(r.external_id or "") for r in records])
    known.prefetch(site_id, EMAIL, [normalise_email(r.email) for r in records])
    for rec in records:
        email = normalise_email(rec.email)
        if not rec.id or not rec.type or (not email and not rec.external_id):
            result.skipped.append(f"engagement without id, type or contact{_key(rec.id)}")
            continue
        pid = resolve_contact(site_id, kind, str(rec.external_id or ""), email, result, known)
        rows.append({
            "site_id": site_id, "profile_id": pid, "source": source, "external_id": str(rec.id)[:200],
            "type": rec.type[:32], "occurred_at": rec.occurred_at, "properties": dict(rec.properties),
        })
        result.profiles.add(pid)
    if rows:
        insert_ignoring_conflicts(Engagement, rows, ["site_id", "source", "external_id"])
    result.stored = len(rows)
    return result


def refresh_segments(site_id: int, profile_ids: set[int]) -> None:
    """Let live segments re-check changed profiles, when the segments service offers it."""
    if not profile_ids:
        return
    try:
        from ..segments.live import refresh_profiles
    except ImportError:
        return
    refresh_profiles(site_id, sorted(profile_ids))


def _key(value: Any) -> str:
    return f" ({str(value)[:60]})" if value else ""
