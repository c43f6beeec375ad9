"""Finding a profile from what an admin types: a visitor id, an email, a customer id or a profile id."""

from __future__ import annotations

from dataclasses import dataclass

from ..profiles.identity import CUSTOMER, EMAIL, VISITOR, lookup
from ..profiles.merge import resolve_profile_id
from ..profiles.privacy import identities_by_kind
from ..validation import whole_number


@dataclass
class Found:
    profile_id: int
    visitor: str | None  # a widget visitor id of the profile: what recommendations are asked for


def find_profile(site_id: int, query: str) -> Found | None:
    query = (query or "").strip()
    if not query:
        return None
    profile_id = None
    if "@" in query:
        profile_id = lookup(site_id, EMAIL, [query.lower()]).get(query.lower())
    if profile_id is None:
        profile_id = lookup(site_id, VISITOR, [query]).get(query)
        if profile_id is not None:
            return Found(profile_id, query)
    if profile_id is None:
        profile_id = lookup(site_id, CUSTOMER, [query]).get(query)
    if profile_id is None and whole_number(query) is not None:
        profile_id = resolve_profile_id(site_id, whole_number(query))
    if profile_id is None:
        return None
    visitors = identities_by_kind(profile_id).get(VISITOR) or []
    return Found(profile_id, visitors[-1] if visitors else None)
