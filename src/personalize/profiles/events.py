"""The shape of an incoming event, and its validation."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..records import EVENT_TYPES
from ..validation import InvalidInput, identifier, integer, mapping, number, only_known, text

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_ITEMS = 500
# Events from before this are surely a broken clock; later than a day ahead too.
EARLIEST_MS = 946684800000  # 2000-01-01

COMMON = {"id", "type", "visitor", "ts", "url", "title", "referrer", "properties"}
FIELDS = {
    "page_viewed": COMMON,
    "product_viewed": COMMON | {"product_id", "rec_id", "slot", "position", "price"},
    "product_added": COMMON | {"product_id", "quantity", "price", "rec_id", "slot", "position", "currency"},
    "order_completed": COMMON | {"order_id", "items", "revenue", "currency", "rec_id", "email", "customer_id"},
    "rec_impression": COMMON | {"rec_id", "slot", "items", "strategy"},
    "rec_clicked": COMMON | {"rec_id", "slot", "product_id", "position", "strategy"},
    "identify": COMMON | {"email", "customer_id", "traits", "signature", "token"},
}


@dataclass
class IncomingEvent:
    """A validated event, ready to store."""

    id: str
    type: str
    visitor: str
    occurred_at: datetime
    product_id: str | None = None
    rec_id: str | None = None
    slot: str | None = None
    position: int | None = None
    url: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)  # order lines / impression items
    quantity: float | None = None
    price: float | None = None
    order_id: str | None = None
    revenue: float | None = None
    currency: str | None = None
    email: str | None = None
    customer_id: str | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    signature: str | None = None  # the shop's HMAC of the identity: a trusted identify
    token: str | None = None  # a signed click-through token: a trusted identify


def _timestamp(raw: dict, path: str, now_ms: float) -> datetime:
    ts = number(raw, "ts", path, minimum=EARLIEST_MS)
    if ts is None or ts > now_ms + 86_400_000:
        ts = now_ms  # missing, or a clock far ahead: the moment we received it is the best guess
    return datetime.fromtimestamp(ts / 1000.0, UTC).replace(tzinfo=None)


def _order_items(raw: dict, path: str) -> list[dict[str, Any]]:
    items = raw.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidInput(f"{path}items", "must be a list")
    if len(items) > MAX_ITEMS:
        raise InvalidInput(f"{path}items", f"has more than {MAX_ITEMS} entries")
    out = []
    for j, item in enumerate(items):
        ipath = f"{path}items[{j}]."
        if not isinstance(item, dict):
            raise InvalidInput(f"{path}items[{j}]", "must be an object with product_id, quantity, price")
        only_known(item, {"product_id", "quantity", "price", "title"}, ipath)
        out.append({
            "product_id": text(item, "product_id", ipath, required=True),
            "quantity": number(item, "quantity", ipath, minimum=0, maximum=1e6, exclusive_min=True) or 1.0,
            "price": number(item, "price", ipath, minimum=0, maximum=1e9),
        })
    return out


def validate_event(raw: Any, index: int, now_ms: float | None = None) -> IncomingEvent:
    """Check one event dict; raise :class:`InvalidInput` naming ``events[index].<field>``."""
    path = f"events[{index}]."
    if not isinstance(raw, dict):
        raise InvalidInput(f"events[{index}]", "must be an object")
    etype = raw.get("type")
    if etype not in FIELDS:
        if etype is None:
            raise InvalidInput(f"{path}type", "is required", "missing")
        raise InvalidInput(f"{path}type", f"must be one of {', '.join(EVENT_TYPES)}; got {str(etype)[:40]!r}")
    only_known(raw, FIELDS[etype], path)
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    ev = IncomingEvent(
        id=identifier(raw, "id", path, required=True, max_len=64),
        type=etype,
        visitor=identifier(raw, "visitor", path, required=True, max_len=128),
        occurred_at=_timestamp(raw, path, now_ms),
        url=text(raw, "url", path, max_len=2000),
        properties=mapping(raw, "properties", path),
    )
    for key in ("title", "referrer"):
        value = text(raw, key, path, max_len=2000)
        if value:
            ev.properties[key] = value
    need_product = etype in ("product_viewed", "product_added", "rec_clicked")
    ev.product_id = text(raw, "product_id", path, required=need_product)
    ev.rec_id = identifier(raw, "rec_id", path, required=etype in ("rec_impression", "rec_clicked"))
    ev.slot = identifier(raw, "slot", path)
    ev.position = integer(raw, "position", path, maximum=1000)
    ev.quantity = number(raw, "quantity", path, minimum=0, maximum=1e6, exclusive_min=True)
    ev.price = number(raw, "price", path, minimum=0, maximum=1e9)
    ev.currency = text(raw, "currency", path, max_len=8)
    strategy = text(raw, "strategy", path, max_len=32)
    if strategy:
        ev.properties["strategy"] = strategy
    if etype == "rec_impression":
        shown = raw.get("items")
        if shown is not None:
            if not isinstance(shown, list) or len(shown) > 100 or not all(isinstance(s, str) and len(s) <= 200 for s in shown):
                raise InvalidInput(f"{path}items", "must be a list of at most 100 product ids")
            ev.properties["items"] = ",".join(shown)[:2000]
    if etype == "order_completed":
        ev.items = _order_items(raw, path)
        if not ev.items:
            raise InvalidInput(f"{path}items", "an order needs at least one item", "missing")
        ev.order_id = text(raw, "order_id", path) or ev.id
        ev.revenue = number(raw, "revenue", path, minimum=0, maximum=1e12)
    if etype in ("identify", "order_completed"):
        email = text(raw, "email", path, max_len=320)
        if email is not None:
            email = email.strip().lower()
            if not EMAIL_RE.match(email):
                raise InvalidInput(f"{path}email", "is not an email address")
        ev.email = email
        ev.customer_id = text(raw, "customer_id", path)
    if etype == "identify":
        ev.traits = mapping(raw, "traits", path)
        from .attributes import NAME_RE

        for name in ev.traits:
            if not NAME_RE.match(name):
                raise InvalidInput(f"{path}traits.{name[:40]}", "trait names are letters, digits or _ . - (at most 100)")
        ev.signature = text(raw, "signature", path, max_len=128)
        ev.token = text(raw, "token", path, max_len=1000)
        if not ev.email and not ev.customer_id and not ev.token:
            raise InvalidInput(f"{path}email", "identify needs an email, a customer_id or a token", "missing")
    return ev


def validate_batch(events: Any, max_events: int) -> list[IncomingEvent]:
    """Validate a whole batch; the first invalid event rejects the batch (nothing is stored)."""
    if not isinstance(events, list):
        raise InvalidInput("events", "must be a list of events")
    if not events:
        raise InvalidInput("events", "is empty; send at least one event", "missing")
    if len(events) > max_events:
        raise InvalidInput("events", f"has {len(events)} events; at most {max_events} per request", "too_many")
    now_ms = time.time() * 1000
    return unique_by_id([validate_event(raw, i, now_ms) for i, raw in enumerate(events)])


def unique_by_id(events: list[IncomingEvent]) -> list[IncomingEvent]:
    """The events with each id once (the first wins): a batch repeating an id counts it once."""
    seen: set[str] = set()
    unique = []
    for ev in events:
        if ev.id not in seen:
            seen.add(ev.id)
            unique.append(ev)
    return unique
