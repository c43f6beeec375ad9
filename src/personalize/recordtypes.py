"""Plain records that cross the plugin boundary (plugins import them from :mod:`personalize.records`).

Connectors yield these and hooks receive them; they carry no ORM state, so a
plugin can build and test them without a database or Flask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVENT_TYPES = (
    "page_viewed",
    "product_viewed",
    "product_added",
    "order_completed",
    "rec_impression",
    "rec_clicked",
    "identify",
)


@dataclass(frozen=True)
class ProductRecord:
    """A product of a shop's catalogue, keyed by the shop's own product id."""

    id: str
    title: str
    url: str = ""
    image: str = ""
    price: float | None = None
    currency: str = ""
    category: str = ""
    description: str = ""
    in_stock: bool = True
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderLine:
    """One line of an order; ``title`` is the product name as the order shows it."""

    product_id: str
    quantity: float = 1.0
    price: float | None = None
    title: str = ""


@dataclass(frozen=True)
class OrderRecord:
    """A completed order; ``customer_id`` or ``email`` ties it to a contact (both may be empty for guests)."""

    id: str
    occurred_at: datetime
    lines: tuple[OrderLine, ...]
    customer_id: str = ""
    email: str = ""
    currency: str = ""
    country: str = ""

    @property
    def total(self) -> float:
        return sum((line.price or 0.0) * line.quantity for line in self.lines)


@dataclass(frozen=True)
class ContactRecord:
    """A known person in another system: identities plus attributes to merge into the profile."""

    external_id: str = ""
    email: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    """One accepted behavioural event, as stored and as hooks see it."""

    site_id: int
    event_id: str
    type: str
    visitor: str
    profile_id: int
    occurred_at: datetime
    product_id: str = ""
    rec_id: str = ""
    slot: str = ""
    position: int | None = None
    url: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recommendation:
    """One item in a recommendation list, with the human reason shown beside it.

    Hooks that re-rank a list may change ``score`` and ``reason`` and reorder or
    drop items; ``product_id`` is the shop's own product id.
    """

    product_id: str
    score: float
    reason: str = ""
    source: str = ""


# --- Connectors: what a connector's streams yield and what its push receives ---


@dataclass(frozen=True)
class EngagementRecord:
    """Something a contact did in another system: an email opened or clicked, a form sent…

    ``id`` is unique per source (a repeated id is stored once); ``email`` or
    ``external_id`` ties it to a contact; ``type`` is short and lower case
    (``email_open``, ``email_click``, ``email_bounce``…).
    """

    id: str
    type: str
    occurred_at: datetime
    email: str = ""
    external_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """Yielded by a stream after some records: "everything before this point is done".

    ``state`` is the stream's own JSON-able resume state. The sync engine stores the
    records yielded before it and this state in one transaction, and hands the last
    stored state back to the stream on the next run.
    """

    state: dict[str, Any]


@dataclass(frozen=True)
class SkippedRecord:
    """Yielded by a stream for a remote record it cannot use (malformed, incomplete).

    The engine counts it and notes ``reason`` in the run log; the sync goes on.
    """

    reason: str
    key: str = ""


@dataclass(frozen=True)
class DeletedRecord:
    """Yielded by a stream or a webhook when the remote system deleted a record.

    ``entity`` is ``"contact"`` or ``"product"``; ``external_id`` is the id the
    connector gives that record everywhere else (the contact's id of its
    ``identity_kind``, the product's id). A deleted product leaves the catalogue: it
    is never recommended again. A deleted contact loses what this connector brought:
    the link from its remote id to the profile and the attributes this connector
    set; what the visitor did on the shop stays, under their other identities.
    ``erase=True`` (a privacy request, such as Shopify's ``customers/redact``)
    erases the whole profile here, as ``DELETE /api/v1/profiles/<id>`` does.
    A deletion of something never stored is not an error.
    """

    entity: str
    external_id: str
    erase: bool = False


@dataclass(frozen=True)
class SegmentChange:
    """A profile entered (``added=True``) or left a segment: what a push receives.

    ``identities`` holds every id the profile is known by (``email``,
    ``customer_id``, ``hubspot_id``…), so a connector can address the contact in
    its own system without asking the database.
    """

    segment: str
    profile_id: int
    added: bool
    identities: dict[str, str] = field(default_factory=dict)
    segment_id: int | None = None
    occurred_at: datetime | None = None

    @property
    def email(self) -> str:
        return self.identities.get("email", "")


@dataclass(frozen=True)
class PushResult:
    """What happened to one :class:`SegmentChange` in the remote system.

    ``status`` is ``ok`` (applied, or already so), ``skipped`` (the contact is not
    there, or a contact policy forbids it; ``message`` says which) or ``failed``.
    """

    profile_id: int
    segment: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class RecommendedItem:
    """One position of a person's pushed list (see :class:`ContactRecommendations`).

    ``url`` is the click address on the personalize server: it redirects to the product
    with attribution (the list's ``rec_id`` and a sealed token naming the person), so a
    provider's template links to it as is. ``image`` is the product's own picture address;
    ``price_text`` the price as the shop shows it (``"45.00 EUR"``).
    """

    position: int
    product_id: str
    title: str
    url: str
    image: str = ""
    price: float | None = None
    currency: str = ""
    price_text: str = ""


@dataclass(frozen=True)
class ContactRecommendations:
    """A person's current top N, what a push of recommendations receives (``push_recommendations``).

    ``items`` is best first (at most the connection's ``recommendations`` setting; fewer
    when the shop has fewer to offer: clear the remaining positions). ``block_url`` is the
    start of the person's open-time email block addresses: ``block_url + ".png"`` is the
    image of their list when the email is opened, ``block_url + "/1"`` the click on its first
    position, ``block_url + "/1.png"`` its first card alone. ``identities`` as in
    :class:`SegmentChange`. The push's result per person is a :class:`PushResult` whose
    ``segment`` is ``"recommendations"``.
    """

    profile_id: int
    items: tuple[RecommendedItem, ...]
    identities: dict[str, str] = field(default_factory=dict)
    rec_id: str = ""
    block_url: str = ""

    @property
    def email(self) -> str:
        return self.identities.get("email", "")


# --- Journeys: what a connector's journey action receives and answers ---


@dataclass(frozen=True)
class ActionTarget:
    """One person a journey's connector action is for (see the ``register_journey_actions`` hook).

    ``key`` is the idempotency key of this person's step: the same on every retry, so a
    connector that can hand it to the provider (a header, an external id) makes a retried
    call harmless; ``identities`` holds every id the profile is known by (``email``,
    ``customer_id``, ``hubspot_id``…); ``data`` is what the journey was entered with.
    """

    profile_id: int
    key: str
    identities: dict[str, str] = field(default_factory=dict)
    journey: str = ""
    step: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def email(self) -> str:
        return self.identities.get("email", "")


@dataclass(frozen=True)
class ActionResult:
    """What happened to one :class:`ActionTarget`, matched by ``key``.

    ``status``: ``ok`` (done, or already so), ``skipped`` (the person is not in the
    remote system; ``message`` says why), ``failed`` (will not work by trying again) or
    ``retry`` (a passing problem: the step is tried again later with the same key).
    """

    key: str
    status: str
    message: str = ""

