"""The shape of an incoming event, and its validation."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..records import EVENT_TYPES
from ..shapes import Ident, List, Map, Number, Obj, Tagged, Text, Whole
from ..validation import InvalidInput
from .attributes import NAME_RE  # traits become attributes

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MAX_ITEMS = 500
# Events from before this are surely a broken clock; later than a day ahead too.
EARLIEST_MS = 946684800000  # 2000-01-01


def _email(value: str, field: str) -> str:
    value = value.strip()
    if not EMAIL_RE.match(value):
        raise InvalidInput(field, "is not an email address")
    return value.lower()


# The declaration of every event type: what validate_event checks and what the OpenAPI description shows.
_TEXT = Text(2000)
_COMMON = {
    "id": Ident(64, required=True, description="unique per event: the idempotency key"),
    "visitor": Ident(128, required=True),
    "ts": Number(EARLIEST_MS, description="epoch milliseconds; more than a day ahead of the server's clock, or absent: "
                                          "the time it arrived"),
    "url": _TEXT,
    "properties": Map(50),
    "title": _TEXT,
    "referrer": _TEXT,
}
_REC = {"rec_id": Ident(64), "slot": Ident(64)}
_POSITION = Whole(0, 1000)
_PRICE = Number(0, 1e9)
_CURRENCY = Text(8)
_STRATEGY = Text(32)
_EMAIL = Text(320, check=_email, pattern=EMAIL_RE, pattern_message="is not an email address",
              description="an email address (spaces around it are dropped; read in lower case)")
_CUSTOMER = Text(200)
ORDER_ITEM = Obj({
    "product_id": Text(200, required=True),
    "quantity": Number(0, 1e6, exclusive_min=True, description="1 when absent"),
    "price": _PRICE,
    "title": Text(2000, description="not stored: the catalogue has the product's title"),
}, message="must be an object with product_id, quantity, price")


def _event(fields: dict, *, product: bool = False, rec: bool = False, **kw) -> Obj:
    extra = dict(fields)
    if product:
        extra["product_id"] = Text(200, required=True, description="your product id")
    if rec:
        extra["rec_id"] = Ident(64, required=True)
    return Obj({**_COMMON, **extra}, **kw)


EVENT = Tagged("type", {
    "page_viewed": _event({}),
    "product_viewed": _event({**_REC, "position": _POSITION, "price": _PRICE}, product=True),
    "product_added": _event({**_REC, "position": _POSITION, "quantity": Number(0, 1e6, exclusive_min=True), "price": _PRICE,
                             "currency": _CURRENCY}, product=True),
    "order_completed": _event({
        "rec_id": Ident(64),
        "items": List(ORDER_ITEM, min_items=1, max_items=MAX_ITEMS, required=True, missing_message="an order needs at least one item"),
        "order_id": Text(200, description="the event id when absent"),
        "revenue": Number(0, 1e12), "currency": _CURRENCY, "email": _EMAIL, "customer_id": _CUSTOMER,
    }),
    "rec_impression": _event({"slot": Ident(64), "strategy": _STRATEGY,
                              "items": List(Text(200), max_items=100, description="the product ids shown")},
                             rec=True),
    "rec_clicked": _event({"slot": Ident(64), "position": _POSITION, "strategy": _STRATEGY}, product=True, rec=True),
    "identify": _event({
        "email": _EMAIL, "customer_id": _CUSTOMER,
        "traits": Map(50, key_pattern=NAME_RE, key_message="trait names are letters, digits or _ . - (at most 100)",
                      description="attributes of the person; names as attribute names"),
        "signature": Text(128, description="hex HMAC-SHA256 of the identity with the site's signing secret"),
        "token": Text(1000, description="a click-through token from POST /profiles/tokens"),
    }, any_of=("email", "customer_id", "token"), any_of_message="identify needs an email, a customer_id or a token"),
})
assert set(EVENT.variants) == set(EVENT_TYPES)
FIELDS = {etype: {"type", *shape.fields} for etype, shape in EVENT.variants.items()}


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


def validate_event(raw: Any, index: int, now_ms: float | None = None) -> IncomingEvent:
    """Check one event dict against its declaration (:data:`EVENT`); raise :class:`InvalidInput`
    naming ``events[index].<field>``."""
    etype, v = EVENT.read_object(raw, f"events[{index}]")
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    ts = v["ts"]
    if ts is None or ts > now_ms + 86_400_000:
        ts = now_ms  # missing, or a clock far ahead: the moment we received it is the best guess
    ev = IncomingEvent(
        id=v["id"], type=etype, visitor=v["visitor"], occurred_at=datetime.fromtimestamp(ts / 1000.0, UTC).replace(tzinfo=None),
        url=v["url"], properties=v["properties"],
    )
    for key in ("title", "referrer", "strategy"):
        if v.get(key):
            ev.properties[key] = v[key]
    for key in ("product_id", "rec_id", "slot", "position", "quantity", "price", "currency", "order_id", "revenue",
                "email", "customer_id", "signature", "token"):
        if key in v:
            setattr(ev, key, v[key])
    if etype == "rec_impression" and v["items"] is not None:
        ev.properties["items"] = ",".join(v["items"])[:2000]
    if etype == "order_completed":
        ev.items = [{"product_id": item["product_id"], "quantity": item["quantity"] or 1.0, "price": item["price"]}
                    for item in v["items"]]
        ev.order_id = ev.order_id or ev.id
    if etype == "identify":
        ev.traits = v["traits"]
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
