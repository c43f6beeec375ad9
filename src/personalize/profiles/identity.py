"""Identity resolution: which profile a visitor id, email or customer id belongs to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from ..db import db, insert_ignoring_conflicts
from ..models import Identity, Profile, utcnow

VISITOR, EMAIL, CUSTOMER = "visitor", "email", "customer_id"
MAX_TRAITS = 50


def assignment_key(kind: str, value: str) -> str:
    """What the holdout and the experiments' arms are decided by for a person first known by this
    identity: a widget visitor id as it is; ``email:<address, trimmed and lower-cased>``;
    ``customer_id:<id>`` (any other kind of id: ``<kind>:<id>``).

    A profile gets it once, when it is created (``profiles.assignment_key``), and keeps it through
    identification and merges; a request for someone without a profile yet is decided by the same
    key, so their first request and every later one agree."""
    if kind == VISITOR:
        return value
    if kind == EMAIL:
        return f"{EMAIL}:{value.strip().lower()}"
    return f"{kind}:{value}"


_LOOKUP = select(Identity.value, Identity.profile_id).where(
    Identity.site_id == bindparam("site_id"), Identity.kind == bindparam("kind"),
    Identity.value.in_(bindparam("values", expanding=True)),
)  # built once: every event batch resolves its visitors
_NEW_PROFILES = insert(Profile.__table__).returning(Profile.__table__.c.id, sort_by_parameter_order=True)


def lookup(site_id: int, kind: str, values: Iterable[str]) -> dict[str, int]:
    """Existing profiles for identity values of one kind (absent values have none)."""
    values = list(dict.fromkeys(values))
    out: dict[str, int] = {}
    if not values:
        return out
    if db.session.autoflush:
        db.session.flush()
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":  # on the driver's cursor: binding through SQLAlchemy cost more than the query
        cursor = connection.connection.driver_connection.cursor()
        try:
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                cursor.execute(f"SELECT value, profile_id FROM {Identity.__tablename__} WHERE site_id = ? AND kind = ? "
                               f"AND value IN ({', '.join('?' * len(chunk))})", (site_id, kind, *chunk))
                out.update(cursor.fetchall())
        finally:
            cursor.close()
        return out
    for start in range(0, len(values), 500):
        out.update(connection.execute(_LOOKUP, {"site_id": site_id, "kind": kind, "values": values[start : start + 500]}).all())
    return out


def profiles_for(site_id: int, kind: str, values: Iterable[str], attrs: dict[str, dict[str, Any]] | None = None) -> dict[str, int]:
    """Profiles for identity values of one kind, creating a profile for each unknown value.

    Safe under concurrency: when two requests create the same identity at once, the
    loser's fresh profile is dropped and both end up on the winner's.
    """
    return profiles_and_created(site_id, kind, values, attrs)[0]


def profiles_and_created(
    site_id: int, kind: str, values: Iterable[str], attrs: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, int], set[int]]:
    """:func:`profiles_for`, plus the ids of the profiles this call created (they have no attributes yet)."""
    values = list(dict.fromkeys(values))
    found = lookup(site_id, kind, values)
    missing = [v for v in values if v not in found]
    fresh: set[int] = set()
    if missing:
        now = utcnow()
        created: dict[str, int] = {}
        # one INSERT … RETURNING per shape of extra attributes (usually one), ids in row order:
        # new visitors arrive with nearly every event batch, and a flush of ORM objects cost several times more
        shapes: dict[tuple[str, ...], list[str]] = {}
        for value in missing:
            shapes.setdefault(tuple(sorted((attrs or {}).get(value, {}))), []).append(value)
        connection = db.session.connection()
        for group in shapes.values():
            rows = [{"site_id": site_id, "created_at": now, "last_seen_at": now, "attributes": {},
                     "assignment_key": assignment_key(kind, v), **(attrs or {}).get(v, {})} for v in group]
            ids = connection.execute(_NEW_PROFILES, rows).scalars().all()
            created.update(zip(group, ids, strict=True))
        rows = [{"site_id": site_id, "kind": kind, "value": v, "profile_id": created[v], "created_at": now} for v in missing]
        won = {value for _id, value in insert_ignoring_conflicts(Identity, rows, ["site_id", "kind", "value"], returning=(Identity.id, Identity.value))}
        lost = [v for v in missing if v not in won]
        for v in won:
            found[v] = created[v]
            fresh.add(created[v])
        if lost:
            db.session.execute(delete(Profile).where(Profile.id.in_([created[v] for v in lost])))
            found.update(lookup(site_id, kind, lost))
    return found, fresh


def profiles_for_visitors(site_id: int, visitors: Iterable[str]) -> dict[str, int]:
    return profiles_for(site_id, VISITOR, visitors)


_ONE = select(Identity.profile_id).where(
    Identity.site_id == bindparam("site_id"), Identity.kind == bindparam("kind"), Identity.value == bindparam("value")
)  # built once: every recommendation request asks


def profile_for_visitor(site_id: int, visitor: str) -> int | None:
    """The visitor's profile id, without creating one."""
    return db.session.scalar(_ONE, {"site_id": site_id, "kind": VISITOR, "value": visitor})


def attach_identities(
    site_id: int, profile_id: int, *, email: str | None = None, customer_id: str | None = None, traits: dict | None = None, at=None
) -> None:
    """Record an email / customer id for a profile, if no other profile holds it yet.

    An identify from a browser is a claim, not proof: it never moves another
    profile's identity or history here (a signed one goes through
    :func:`personalize.profiles.merge.link_identity`). Traits become attributes
    (source ``identify``, newest wins).
    """
    profile = db.session.get(Profile, profile_id)
    now = utcnow()
    for kind, value in ((EMAIL, email), (CUSTOMER, customer_id)):
        if not value:
            continue
        insert_ignoring_conflicts(Identity, [{"site_id": site_id, "kind": kind, "value": value, "profile_id": profile_id, "created_at": now}], ["site_id", "kind", "value"])
        owner = lookup(site_id, kind, [value]).get(value)
        if owner == profile_id:
            if kind == EMAIL and not profile.email:
                profile.email = value
            if kind == CUSTOMER and not profile.customer_id:
                profile.customer_id = value
    if traits:
        from .attributes import set_attributes

        set_attributes(site_id, profile_id, dict(list(traits.items())[:MAX_TRAITS]), "identify", at, commit=False)
