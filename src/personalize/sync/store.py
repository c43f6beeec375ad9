"""Turning connector records into the single customer view.

Contacts are resolved to profiles by their remote id (stored as an identity of the
connector's own kind, such as ``hubspot_id``) and by email: a known remote id wins,
else a known email, else a new profile. The missing identity is then linked to that
profile. When the id and the email point to two profiles, a connector is a trusted
source that they are one person: :func:`personalize.profiles.merge.resolve_contact`
merges them (with its bounds). All of it takes a few statements per batch.

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

from sqlalchemy import delete, update

from ..catalog import upsert_products
from ..db import db, insert_ignoring_conflicts
from ..models import Identity, Profile, utcnow
from ..profiles import import_orders
from ..profiles.attributes import check_attributes, set_attributes
from ..profiles.identity import EMAIL, lookup, profiles_for
from ..records import ContactRecord, DeletedRecord, EngagementRecord, OrderRecord, ProductRecord
from ..validation import InvalidInput, first_unstorable
from .models import Engagement


@dataclass
class StoreResult:
    stored: int = 0
    skipped: list[str] = field(default_factory=list)
    conflicts: int = 0
    merged: int = 0
    profiles: set[int] = field(default_factory=set)
    erased: set[int] = field(default_factory=set)  # profiles a privacy deletion erased


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


def resolve_contacts(site_id: int, kind: str, pairs: list[tuple[str, str]], result: StoreResult) -> list[int]:
    """Profiles for remote contacts given as ``(remote id, email)`` pairs, in a handful of statements.

    A known remote id wins, then a known email; contacts known by neither get new
    profiles (by email when they have one). When the id and the email are held by two
    profiles, the profiles service merges them first. Then each missing identity is
    linked to its contact's profile unless another profile holds it (a conflict,
    counted: it can only happen when a merge was refused or raced).
    """
    kinds = [(kind, [ext for ext, _ in pairs if ext and kind]), (EMAIL, [email for _, email in pairs if email])]
    known = {k: lookup(site_id, k, values) if values else {} for k, values in kinds}
    by_id, by_email = known[kind] if kind else {}, known[EMAIL]
    split = [(ext, e) for ext, e in pairs if ext and kind and e and ext in by_id and e in by_email and by_id[ext] != by_email[e]]
    if split:
        # a trusted source says the two profiles are one person: the profiles service merges them (bounded)
        from ..profiles.merge import resolve_contact as merge_contact

        for ext, email in dict.fromkeys(split):
            merge_contact(site_id, email=email, ids={kind: ext}, source="connector")
            result.merged += 1
        known = {k: lookup(site_id, k, values) if values else {} for k, values in kinds}
        by_id, by_email = known[kind] if kind else {}, known[EMAIL]
    fresh_emails = [e for ext, e in pairs if e and e not in by_email and not (ext and kind and ext in by_id)]
    if fresh_emails:
        by_email.update(profiles_for(site_id, EMAIL, fresh_emails, attrs={e: {"email": e} for e in fresh_emails}))
    fresh_ids = [ext for ext, e in pairs if ext and kind and not e and ext not in by_id]
    if fresh_ids:
        by_id.update(profiles_for(site_id, kind, fresh_ids))
    pids: list[int] = []
    links: dict[tuple[str, str], int] = {}
    for ext, email in pairs:
        pid = by_id.get(ext) if ext and kind and ext in by_id else by_email[email]
        pids.append(pid)
        if ext and kind and ext not in by_id:
            links.setdefault((kind, ext), pid)
        if email and email not in by_email:
            links.setdefault((EMAIL, email), pid)
        elif email and by_email[email] != pid:
            result.conflicts += 1  # the email belongs to another profile: left apart, not merged
    if links:
        now = utcnow()
        rows = [{"site_id": site_id, "kind": k, "value": v, "profile_id": pid, "created_at": now} for (k, v), pid in links.items()]
        insert_ignoring_conflicts(Identity, rows, ["site_id", "kind", "value"])
        for k in {k for k, _ in links}:
            holders = lookup(site_id, k, [v for kk, v in links if kk == k])
            for v, holder in holders.items():
                if holder != links[(k, v)]:
                    result.conflicts += 1
                elif k == EMAIL:
                    db.session.execute(
                        update(Profile).where(Profile.id == holder, Profile.email.is_(None)).values(email=v)
                    )
    return pids


def storable(records: Iterable[Any], result: StoreResult) -> list[Any]:
    """The records every value of which a database can store; the others are skipped, naming
    the field (text with a NUL or a lone surrogate, a NaN or infinite number: a provider's JSON
    or a file can hold them, and one would fail the whole batch's transaction)."""
    good = []
    for rec in records:
        found = first_unstorable(rec)
        if found is None:
            good.append(rec)
        else:
            key = getattr(rec, "external_id", None) or getattr(rec, "id", None) or getattr(rec, "email", None)
            result.skipped.append(f"{type(rec).__name__.removesuffix('Record').lower() or 'record'}{_key(key if isinstance(key, str) and not first_unstorable(key) else '')}: {found[0]} {found[1]}")
    return good


def store_contacts(site_id: int, source: str, kind: str, mapping: dict[str, str | None], records: Iterable[ContactRecord]) -> StoreResult:
    """Resolve the contacts to profiles and merge their mapped attributes (no commit)."""
    result = StoreResult()
    usable: list[tuple[ContactRecord, dict[str, Any], tuple[str, str]]] = []
    for rec in storable(records, result):
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
        usable.append((rec, attrs, (external_id, email)))
    pids = resolve_contacts(site_id, kind, [pair for _, _, pair in usable], result)
    for (rec, attrs, _pair), pid in zip(usable, pids, strict=True):
        set_attributes(site_id, pid, attrs, source, rec.updated_at or utcnow(), commit=False)
        result.profiles.add(pid)
        result.stored += 1
    return result


def store_deletions(site_id: int, source: str, kind: str, records: list[DeletedRecord]) -> StoreResult:
    """Apply what the remote system deleted (see :class:`~personalize.records.DeletedRecord`).
    Contacts are found by this connector's identity ``kind``; an erase commits on its own."""
    from ..catalog import delete_products
    from ..profiles.models import ProfileAttribute
    from ..profiles.privacy import erase_profile

    result = StoreResult()
    for rec in storable(records, result):
        external_id = str(rec.external_id or "").strip()
        if not external_id or rec.entity not in ("contact", "product"):
            result.skipped.append(f"deletion of a {rec.entity or 'record'} without id or of an unknown kind{_key(rec.external_id)}")
            continue
        result.stored += 1
        if rec.entity == "product":
            delete_products(site_id, [external_id])  # raises the catalogue version: no process shows it again
            continue
        pid = lookup(site_id, kind, [external_id]).get(external_id) if kind else None
        if pid is None:
            continue
        if rec.erase:
            erase_profile(site_id, pid)
            result.profiles.discard(pid)
            result.erased.add(pid)
            continue
        db.session.execute(delete(Identity).where(Identity.site_id == site_id, Identity.kind == kind, Identity.value == external_id))
        db.session.execute(delete(ProfileAttribute).where(ProfileAttribute.profile_id == pid, ProfileAttribute.source == source))
        result.profiles.add(pid)  # its segments are worked out again without those attributes
    return result


def store_products(site_id: int, records: list[ProductRecord]) -> StoreResult:
    result = StoreResult()
    good = []
    for rec in storable(records, result):
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
    for rec in storable(records, result):
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
    usable: list[tuple[EngagementRecord, tuple[str, str]]] = []
    for rec in storable(records, result):
        email = normalise_email(rec.email)
        if not rec.id or not rec.type or (not email and not rec.external_id):
            result.skipped.append(f"engagement without id, type or contact{_key(rec.id)}")
            continue
        usable.append((rec, (str(rec.external_id or "").strip(), email)))
    pids = resolve_contacts(site_id, kind, [pair for _, pair in usable], result)
    rows = [
        {
            "site_id": site_id, "profile_id": pid, "source": source, "external_id": str(rec.id)[:200],
            "type": rec.type[:32], "occurred_at": rec.occurred_at, "properties": dict(rec.properties),
        }
        for (rec, _pair), pid in zip(usable, pids, strict=True)
    ]
    if rows:
        insert_ignoring_conflicts(Engagement, rows, ["site_id", "source", "external_id"])
    result.profiles.update(pids)
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
