"""Storing events: exactly once per event id, with the interactions and orders they imply."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import bindparam, insert, select, text, update

from ..db import db, insert_ignoring_conflicts, sqlite_time
from ..kinds import CART, PURCHASE, VIEW
from ..models import Event, Interaction, Order, Profile, utcnow
from ..records import Event as EventRecord
from .events import IncomingEvent
from .identity import VISITOR, attach_identities, profiles_and_created

KIND_OF = {"product_viewed": VIEW, "product_added": CART}


_TOUCH = (
    update(Profile.__table__)
    .where(Profile.__table__.c.id == bindparam("pid"), Profile.__table__.c.last_seen_at < bindparam("when"))
    .values(last_seen_at=bindparam("when"))
)
_INTERACTIONS = insert(Interaction.__table__)  # built once, run on the session's connection

_EVENT_COLUMNS = ("site_id", "event_id", "type", "visitor", "profile_id", "product_id", "rec_id", "slot", "position", "url",
                  "stored_by", "properties", "occurred_at", "received_at")
_EVENT_ARRAYS = ("INTEGER[]", "VARCHAR[]", "VARCHAR[]", "VARCHAR[]", "BIGINT[]", "VARCHAR[]", "VARCHAR[]", "VARCHAR[]",
                 "INTEGER[]", "VARCHAR[]", "BIGINT[]", "JSON[]", "TIMESTAMP[]", "TIMESTAMP[]")

# PostgreSQL: a batch's events as one array per column, so the statement's text is the same
# for any number of rows (a multi-row VALUES list is new text for the driver to parse every time)
_EVENTS_PG = text(
    f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'CAST(:{c} AS {t})' for c, t in zip(_EVENT_COLUMNS, _EVENT_ARRAYS, strict=True))}) "
    "ON CONFLICT (site_id, event_id) DO NOTHING RETURNING event_id"
)


def storer_token() -> int:
    """A random number naming this process (and application) among those that store events, written
    on each event it stores (``events.stored_by``): a reader of the events can then tell which
    process's notifications they went to (the journeys' catch-up). A forked process draws its own."""
    app = current_app._get_current_object()
    found = app.extensions.get("personalize.storer")
    if found is None or found[0] != os.getpid():
        found = app.extensions["personalize.storer"] = (os.getpid(), secrets.randbits(62) + 1)
    return found[1]


# SQLite: the statements run on the driver's cursor (the session's connection, in its transaction).
# Through SQLAlchemy, binding the parameters (a date converted per row, the statement's parameter
# list rebuilt per row) cost the writer more than SQLite spent storing the rows.
_SQLITE_ROWS = 500  # rows per statement: 14 columns each (_EVENT_COLUMNS), well under SQLite's 32,766 parameters


def _sqlite_values(columns: int, n: int) -> str:
    one = "(" + ", ".join("?" * columns) + ")"
    return ", ".join([one] * n)


def _insert_events_sqlite(connection, rows: list[dict]) -> set[str]:
    cursor = connection.connection.driver_connection.cursor()
    now = sqlite_time(utcnow())
    inserted: set[str] = set()
    try:
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start : start + _SQLITE_ROWS]
            args: list = []
            for row in chunk:
                args += (row["site_id"], row["event_id"], row["type"], row["visitor"], row["profile_id"], row["product_id"],
                         row["rec_id"], row["slot"], row["position"], row["url"], row["stored_by"], json.dumps(row["properties"]),
                         sqlite_time(row["occurred_at"]), now)
            cursor.execute(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES {_sqlite_values(len(_EVENT_COLUMNS), len(chunk))} "
                           "ON CONFLICT (site_id, event_id) DO NOTHING RETURNING event_id", args)
            inserted.update(event_id for (event_id,) in cursor.fetchall())
    finally:
        cursor.close()
    return inserted


_INTERACTION_COLUMNS = ("site_id", "profile_id", "order_id", "product_id", "kind", "quantity", "price", "occurred_at")


def _insert_interactions(rows: list[dict]) -> None:
    connection = db.session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(_INTERACTIONS, rows)
        return
    cursor = connection.connection.driver_connection.cursor()
    try:
        for start in range(0, len(rows), _SQLITE_ROWS):
            chunk = rows[start : start + _SQLITE_ROWS]
            args: list = []
            for row in chunk:
                args += (row["site_id"], row["profile_id"], row["order_id"], row["product_id"], row["kind"], row["quantity"],
                         row["price"], sqlite_time(row["occurred_at"]))
            cursor.execute(f"INSERT INTO interactions ({', '.join(_INTERACTION_COLUMNS)}) VALUES {_sqlite_values(8, len(chunk))}", args)
    finally:
        cursor.close()


def _insert_events(rows: list[dict]) -> set[str]:
    """Insert event rows, skipping known (site, event id) pairs; the event ids inserted."""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        if db.session.autoflush:  # as an ORM statement would: pending objects reach the database first
            db.session.flush()
        return _insert_events_sqlite(connection, rows)
    if connection.dialect.name != "postgresql":
        return {event_id for _id, event_id in insert_ignoring_conflicts(Event, rows, ["site_id", "event_id"], returning=(Event.id, Event.event_id))}
    now = utcnow()
    columns = {c: [row[c] for row in rows] for c in _EVENT_COLUMNS[:-3]}
    columns["properties"] = [json.dumps(row["properties"]) for row in rows]
    columns["occurred_at"] = [row["occurred_at"] for row in rows]
    columns["received_at"] = [now] * len(rows)
    return set(connection.execute(_EVENTS_PG, columns).scalars())


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    stored: list[EventRecord] = field(default_factory=list)
    profiles: list[int] = field(default_factory=list)  # the profiles these events now belong to


def store_events(
    site_id: int, events: list[IncomingEvent], before_commit: Callable[[dict[str, int], set[int]], None] | None = None
) -> IngestResult:
    """Store validated events in one transaction and commit; duplicates (known ids) are skipped.

    ``before_commit(profile_of, created)``, if given, runs inside the transaction just
    before the commit, with each visitor's profile and the profiles created for these
    events (the group commit writes new profiles' device facts there: no commit of their own).
    Returns only after the commit, so a caller may acknowledge the events.
    """
    result = IngestResult()
    if not events:
        return result
    stored_by = storer_token()
    try:
        profile_of, created = profiles_and_created(site_id, VISITOR, [ev.visitor for ev in events])
        rows = [
            {
                "site_id": site_id, "event_id": ev.id, "type": ev.type, "visitor": ev.visitor,
                "profile_id": profile_of[ev.visitor], "product_id": ev.product_id, "rec_id": ev.rec_id,
                "slot": ev.slot, "position": ev.position, "url": ev.url, "stored_by": stored_by,
                "properties": _properties(ev), "occurred_at": ev.occurred_at,
            }
            for ev in events
        ]
        inserted = _insert_events(rows)
        new = [ev for ev in events if ev.id in inserted]
        trusted = _derive(site_id, new, profile_of)
        latest: dict[int, object] = {}
        for ev in new:
            pid = profile_of[ev.visitor]
            latest[pid] = max(latest.get(pid, ev.occurred_at), ev.occurred_at)
        if latest:  # one statement for all of them: building one per profile cost more than the inserts
            # in id order: concurrent batches that share profiles lock them in the same order
            db.session.connection().execute(_TOUCH, [{"pid": pid, "when": when} for pid, when in sorted(latest.items())])
        if before_commit is not None:
            before_commit(profile_of, created)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    for ev in trusted:  # after the commit: a merge is a transaction of its own
        _identify_trusted(site_id, ev, profile_of)
    result.accepted = len(new)
    result.duplicates = len(events) - len(new)
    result.profiles = list(dict.fromkeys(profile_of[ev.visitor] for ev in new))
    result.stored = [
        EventRecord(
            site_id=site_id, event_id=ev.id, type=ev.type, visitor=ev.visitor, profile_id=profile_of[ev.visitor],
            occurred_at=ev.occurred_at, product_id=ev.product_id or "", rec_id=ev.rec_id or "", slot=ev.slot or "",
            position=ev.position, url=ev.url or "", properties=_properties(ev),
        )
        for ev in new
    ]
    return result


def _properties(ev: IncomingEvent) -> dict:
    props = dict(ev.properties)
    for key in ("quantity", "price", "currency", "order_id", "revenue", "email", "customer_id"):
        value = getattr(ev, key)
        if value is not None:
            props[key] = value
    if ev.items and ev.type == "order_completed":
        props["items"] = len(ev.items)
    if ev.traits:
        props["traits"] = ev.traits
    return props


def _identify_trusted(site_id: int, ev: IncomingEvent, profile_of: dict[str, int]) -> None:
    """A signed identify (or a valid click-through token) links the visitor to the person,
    merging the visitor's history into the person's profile; a bad proof is only a claim."""
    from .merge import link_identity
    from .trust import read_token, signature_valid

    pid = profile_of[ev.visitor]
    email, customer_id, signal = ev.email, ev.customer_id, None
    if ev.signature and signature_valid(site_id, email, customer_id, ev.signature):
        signal = "signature"
    elif ev.token:
        person = read_token(site_id, ev.token)
        if person is not None:
            email, customer_id, signal = person.email, person.customer_id, "token"
    if signal is None:
        if email or customer_id:
            attach_identities(site_id, pid, email=email, customer_id=customer_id)
            db.session.commit()
        return
    kept = link_identity(site_id, pid, signal, email=email, customer_id=customer_id)
    for visitor, p in profile_of.items():
        if p == pid:
            profile_of[visitor] = kept


def _derive(site_id: int, events: Iterable[IncomingEvent], profile_of: dict[str, int]) -> list[IncomingEvent]:
    """Store what events imply (interactions, orders, identities, traits); returns the
    identify events carrying a proof, to be checked after the commit."""
    trusted: list[IncomingEvent] = []
    interactions: list[dict] = []
    for ev in events:
        pid = profile_of[ev.visitor]
        if ev.type in KIND_OF:
            interactions.append({
                "site_id": site_id, "profile_id": pid, "order_id": None, "product_id": ev.product_id,
                "kind": KIND_OF[ev.type], "quantity": ev.quantity or 1.0, "price": ev.price,
                "occurred_at": ev.occurred_at,
            })
        elif ev.type == "order_completed":
            total = ev.revenue if ev.revenue is not None else sum((i["price"] or 0.0) * i["quantity"] for i in ev.items)
            new_order = insert_ignoring_conflicts(Order, [{
                "site_id": site_id, "external_id": ev.order_id, "profile_id": pid, "total": total,
                "currency": ev.currency or "", "source": "events", "rec_id": ev.rec_id, "occurred_at": ev.occurred_at,
            }], ["site_id", "external_id"], returning=(Order.id,))
            if not new_order:  # the order is known already (e.g. from a connector): count it once
                continue
            order_id = new_order[0][0]
            interactions.extend(
                {
                    "site_id": site_id, "profile_id": pid, "order_id": order_id, "product_id": item["product_id"],
                    "kind": PURCHASE, "quantity": item["quantity"], "price": item["price"], "occurred_at": ev.occurred_at,
                }
                for item in ev.items
            )
        elif ev.type == "identify":
            if ev.signature or ev.token:
                trusted.append(ev)
                email = customer_id = None  # attached once the proof is checked
            else:
                email, customer_id = ev.email, ev.customer_id
            attach_identities(site_id, pid, email=email, customer_id=customer_id, traits=ev.traits, at=ev.occurred_at)
    if interactions:
        _insert_interactions(interactions)
    return trusted


# Built once: every recommendation request reads a history, and building the statement cost more than running it.
_RECENT = (
    select(Interaction.product_id, Interaction.kind, Interaction.occurred_at, Interaction.quantity)
    .where(Interaction.site_id == bindparam("site_id"), Interaction.profile_id == bindparam("profile_id"))
    .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    .limit(bindparam("limit"))
)


def recent_interactions(site_id: int, profile_id: int, limit: int = 200) -> list[tuple[str, int, float, float]]:
    """A profile's newest interactions, newest first: (product id, kind, unix seconds, quantity)."""
    rows = db.session.execute(_RECENT, {"site_id": site_id, "profile_id": profile_id, "limit": limit}).all()
    from calendar import timegm

    return [(p, k, timegm(t.timetuple()) + t.microsecond / 1e6, q) for p, k, t, q in rows]
