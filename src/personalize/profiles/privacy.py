"""The person's rights: everything stored about them (export), and forgetting them (erase).

Both are driven by one declared list, :data:`PERSONAL_TABLES`: every table whose rows
are about one person, with the column naming the profile. A test walks the schema and
fails when a table points at ``profiles`` (or has a visitor, email or IP column) without
being declared here or in :data:`MENTIONING_TABLES`, so a new table cannot be forgotten.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, cast, delete, func, or_, select, text, update

from ..db import db
from ..models import Event, Identity, Interaction, Order, Profile
from .attributes import attributes_of
from .identity import VISITOR

log = logging.getLogger(__name__)

#: table -> the column holding the profile id. Rows are exported and erased by it, in this
#: order (rows that point at other rows of the person go first).
PERSONAL_TABLES: dict[str, str] = {
    "interactions": "profile_id",
    "events": "profile_id",
    "orders": "profile_id",
    "identities": "profile_id",
    "profile_attributes": "profile_id",
    "profile_scores": "profile_id",
    "segment_members": "profile_id",
    "segment_changes": "profile_id",
    "contact_log": "profile_id",
    "journey_steps": "profile_id",  # before their entries, which they point at
    "journey_enrollments": "profile_id",
    "engagements": "profile_id",
    "contact_lists": "profile_id",
    "profile_merges": "kept_profile_id",
}

#: tables that may mention a person in free text without pointing at the profile: erase
#: deletes or redacts the mentions (see :func:`_forget_mentions`); export leaves them out
#: (they are copies of what the person's own rows hold, or run logs).
MENTIONING_TABLES: dict[str, tuple[str, ...]] = {
    "webhook_deliveries": ("body",),  # a connector's raw payload, deleted when it names the person
    "sync_runs": ("message", "errors"),  # the run log, where a value of theirs is replaced by "[erased]"
}

REDACTED = "[erased]"
CHECKPOINT_WAIT_MS = 250


def stored_address(address: str | None, truncate: bool = True) -> str | None:
    """The form of a client address personalize keeps when ``STORE_IP_ADDRESSES`` is on:
    the network only (IPv4 /24, IPv6 /48) when ``truncate``, else the whole address;
    ``None`` for anything that is not an IP address."""
    import ipaddress

    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    if not truncate:
        return str(ip)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def address_facts(config, address: str | None) -> dict[str, str]:
    """``{"ip": …}`` to store with a profile's device facts, or nothing (the default: addresses are not kept)."""
    if not config.get("STORE_IP_ADDRESSES"):
        return {}
    kept = stored_address(address, bool(config.get("IP_ADDRESS_TRUNCATE", True)))
    return {"ip": kept} if kept else {}


def identities_by_kind(profile_id: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind, value in db.session.execute(select(Identity.kind, Identity.value).where(Identity.profile_id == profile_id).order_by(Identity.id)):
        out.setdefault(kind, []).append(value)
    return out


def _table(name: str):
    return db.metadata.tables[name]


def profile_tables() -> dict[str, str]:
    """:data:`PERSONAL_TABLES`, then any other table with a foreign key to ``profiles.id``
    (a plugin's), by that column."""
    out = dict(PERSONAL_TABLES)
    for table in db.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == "profiles" and fk.column.name == "id" and table.name not in out:
                out[table.name] = fk.parent.name
    return out


def _known_values(profile: Profile, identities: dict[str, list[str]]) -> list[str]:
    """Every id of the person that free text could contain: identities, email, customer id."""
    values = {v for vs in identities.values() for v in vs}
    values.update(v for v in (profile.email, profile.customer_id) if v)
    return sorted(v for v in values if v and len(v) >= 2)


def erase_profile(site_id: int, profile_id: int) -> dict[str, list[str]] | None:
    """Delete a profile and every row about it, in one transaction, then forget it in the cache
    and call ``profile_erased``. Returns the identities it had, or ``None`` if unknown.

    Deleted: the rows of every table in :data:`PERSONAL_TABLES` (and, by the visitor ids, events
    that were stored under them), the interactions of the person's orders, connector payloads
    naming them (:data:`MENTIONING_TABLES`) — run logs keep their line with the value redacted —
    and the cached recommendation lists of their visitor ids. Segment member counts drop by one.
    """
    profile = db.session.scalar(select(Profile).where(Profile.id == profile_id, Profile.site_id == site_id))
    if profile is None:
        return None
    identities = identities_by_kind(profile_id)
    visitors = identities.get(VISITOR, [])
    values = _known_values(profile, identities)
    sqlite = db.engine.dialect.name == "sqlite"
    try:
        if sqlite:  # freed pages are zeroed, whatever SQLite was built with
            db.session.execute(text("PRAGMA secure_delete=ON"))
        order_ids = select(Order.id).where(Order.site_id == site_id, Order.profile_id == profile_id).scalar_subquery()
        db.session.execute(delete(Interaction).where(Interaction.order_id.in_(order_ids)))
        for name, column in profile_tables().items():
            table = _table(name)
            db.session.execute(delete(table).where(table.c[column] == profile_id))
        if visitors:  # events stored under the person's visitor ids, whichever profile they reached
            db.session.execute(delete(Event).where(Event.site_id == site_id, Event.visitor.in_(visitors)))
        _forget_mentions(site_id, values)
        db.session.execute(delete(Profile).where(Profile.id == profile_id))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if sqlite:
        _checkpoint_sqlite()
    from ..cache import shared_cache
    from ..plugins import notify

    if visitors:
        shared_cache().forget_visitors(site_id, visitors)
    notify("profile_erased", site_id=site_id, profile_id=profile_id, identities=identities)
    return identities


def _checkpoint_sqlite() -> None:
    """Copy SQLite's write-ahead log into the database and empty it, so the erased rows' old page
    images do not linger in the ``-wal`` file.

    Best effort, and brief: a checkpoint that must wait for readers holds new writers back, so
    it waits at most ``CHECKPOINT_WAIT_MS``; if a reader (a training, say) is still on an older
    snapshot, the log is emptied by a later checkpoint instead.
    """
    try:
        conn = db.session.connection()
        before = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
        try:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(before or 0)}")
        db.session.commit()
        if busy and busy[0]:
            log.info("erase: the SQLite log is in use; a later checkpoint empties it")
    except Exception:  # the erase itself is committed; this is hygiene
        db.session.rollback()
        log.warning("erase: SQLite checkpoint failed", exc_info=True)


def _json_patterns(value: str) -> list[str]:
    """How ``value`` appears in a JSON payload: as a string, or as a bare number."""
    quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = [quoted]
    if re.fullmatch(r"-?\d+", value):
        out += [f"{sep}{value}{end}" for sep in (":", ": ", "[", ",", ", ") for end in (",", "}", "]")]
    return out


def _forget_mentions(site_id: int, values: list[str]) -> None:
    """Delete connector payloads naming the person; redact their ids in the site's run logs.

    Matching ignores case (a shop may send ``Ann@Example.org`` for the stored ``ann@example.org``).
    """
    if not values:
        return
    # the connector tables, by name: the sync package sits above the profiles and is not imported here
    connections_t, runs_t, deliveries_t = _table("connections"), _table("sync_runs"), _table("webhook_deliveries")
    connections = select(connections_t.c.id).where(connections_t.c.site_id == site_id).scalar_subquery()
    patterns = [p.lower() for v in values for p in _json_patterns(v)]
    body = func.lower(deliveries_t.c.body)
    for start in range(0, len(patterns), 50):
        chunk = patterns[start:start + 50]
        db.session.execute(
            delete(deliveries_t).where(
                deliveries_t.c.connection_id.in_(connections), or_(*[body.contains(p, autoescape=True) for p in chunk])
            )
        )
    words = [re.compile(r"(?<![\w.@+-])" + re.escape(v) + r"(?![\w@-]|\.\w)", re.IGNORECASE) for v in values]
    errors_text = func.lower(cast(runs_t.c.errors, Text if db.engine.dialect.name == "postgresql" else String))
    columns = (func.lower(runs_t.c.message), errors_text)
    mentions = or_(*[c.contains(v.lower(), autoescape=True) for v in values for c in columns])

    def scrub(line: str) -> str:
        for word in words:
            line = word.sub(REDACTED, line)
        return line

    found = db.session.execute(select(runs_t.c.id, runs_t.c.message, runs_t.c.errors).where(runs_t.c.site_id == site_id, mentions)).all()
    for run_id, message, errors in found:
        db.session.execute(update(runs_t).where(runs_t.c.id == run_id).values(
            message=scrub(message or ""), errors=[scrub(e) if isinstance(e, str) else e for e in (errors or [])],
        ))


def _iso(v: Any) -> Any:
    return v.isoformat() + "Z" if isinstance(v, datetime) else v


def _rows(table, where, order_by) -> list[dict[str, Any]]:
    cols = [c for c in table.c if c.name not in ("site_id",)]
    return [
        {c.name: _iso(v) for c, v in zip(cols, row, strict=True)}
        for row in db.session.execute(select(*cols).where(where).order_by(*order_by))
    ]


#: the export's key for each personal table (the table name where not listed)
EXPORT_KEYS = {"profile_scores": "scores", "segment_members": "segments", "profile_merges": "merged_profiles",
               "profile_attributes": "attributes"}


def export_profile(site_id: int, profile_id: int) -> dict[str, Any] | None:
    """Everything stored about a person, as JSON-able data (``None`` if unknown): the profile,
    then the rows of every table in :data:`PERSONAL_TABLES` (attributes keyed by name, with
    source and time), and under ``other`` the rows of plugins' tables that point at the profile."""
    profile = db.session.scalar(select(Profile).where(Profile.id == profile_id, Profile.site_id == site_id))
    if profile is None:
        return None
    out: dict[str, Any] = {
        "profile": {"id": profile.id, "email": profile.email, "customer_id": profile.customer_id,
                    "created_at": _iso(profile.created_at), "last_seen_at": _iso(profile.last_seen_at),
                    # what decides their holdout group and experiment arms: an id of theirs (visitor id, email…)
                    "assignment_key": profile.assignment_key},
    }
    for name, column in profile_tables().items():
        table = _table(name)
        order = [table.c[c] for c in ("occurred_at", "id") if c in table.c] or list(table.primary_key.columns)
        rows = _rows(table, table.c[column] == profile_id, order)
        if name in PERSONAL_TABLES:
            out[EXPORT_KEYS.get(name, name)] = rows
        elif rows:  # a plugin's table, as it is
            out.setdefault("other", {})[name] = rows
    out["attributes"] = {k: {**v, "updated_at": _iso(v["updated_at"])} for k, v in attributes_of(profile_id).items()}
    out["scores"] = (out["scores"] or [None])[0]
    return out


def timeline_summary(site_id: int, profile_id: int) -> dict[str, Any]:
    """Counts of events by type, with the first and last time of each, plus orders."""
    events = {
        t: {"count": n, "first_at": _iso(a), "last_at": _iso(b)}
        for t, n, a, b in db.session.execute(
            select(Event.type, func.count(), func.min(Event.occurred_at), func.max(Event.occurred_at))
            .where(Event.profile_id == profile_id).group_by(Event.type).order_by(Event.type)
        )
    }
    n, total, first, last = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Order.total), 0.0), func.min(Order.occurred_at), func.max(Order.occurred_at))
        .where(Order.site_id == site_id, Order.profile_id == profile_id)
    ).one()
    return {"events": events, "orders": {"count": n, "total": round(total, 2), "first_at": _iso(first), "last_at": _iso(last)}}
