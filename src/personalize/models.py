"""The database schema. Only the domain services import this module."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .db import db

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


class Site(db.Model):
    """A shop. Its public key goes into the widget snippet; secret keys live in :class:`ApiKey`."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # not unique: a name an admin picks must not tell them which names other tenants use
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_origins: Mapped[list] = mapped_column(JSON, default=list)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # raised by every product write (personalize.catalog): web processes' card caches compare it
    catalog_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class ApiKey(db.Model):
    """A secret key for server-to-server calls, stored as a SHA-256 hash only."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("site_id", "external_id", name="uq_products_site_external"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(2000), default="")
    image: Mapped[str] = mapped_column(String(2000), default="")
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    currency: Mapped[str] = mapped_column(String(8), default="")
    category: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    in_stock: Mapped[bool] = mapped_column(Boolean, default=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Profile(db.Model):
    """One person (anonymous or known) of one site: the single customer view's root."""

    __tablename__ = "profiles"
    # never hand an erased person's id to somebody new (SQLite would reuse the highest id)
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    customer_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # what the holdout and experiment arms hash (personalize.profiles.identity.assignment_key): set once,
    # from the identity the profile was created by; identification and merges never change it
    assignment_key: Mapped[str | None] = mapped_column(String(360), nullable=True)


class Identity(db.Model):
    """An id that points to a profile: a widget visitor id, an email, a shop customer id…"""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("site_id", "kind", "value", name="uq_identities_site_kind_value"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(320))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Event(db.Model):
    """A raw behavioural event exactly once per (site, event id)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("site_id", "event_id", name="uq_events_site_event"),
        Index("ix_events_site_time", "site_id", "occurred_at"),
        Index("ix_events_site_rec", "site_id", "rec_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    visitor: Mapped[str] = mapped_column(String(128))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), nullable=True, index=True)
    product_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rec_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    properties: Mapped[dict] = mapped_column(JSON, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stored_by: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the storing process (profiles.storer_token); none: an import, older rows


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("site_id", "external_id", name="uq_orders_site_external"),
        Index("ix_orders_site_profile", "site_id", "profile_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), nullable=True)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    currency: Mapped[str] = mapped_column(String(8), default="")
    country: Mapped[str] = mapped_column(String(100), default="")
    source: Mapped[str] = mapped_column(String(32), default="events")
    rec_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)


class Interaction(db.Model):
    """What models learn from: one person × product × moment, typed view < cart < purchase.

    ``product_id`` is the shop's own id (not a foreign key), so behaviour on products
    the catalogue does not know yet is kept and counts once they arrive.
    """

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_profile", "site_id", "profile_id", "occurred_at"),
        Index("ix_interactions_site_time", "site_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), nullable=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), nullable=True, index=True)
    product_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[int] = mapped_column(SmallInteger)
    quantity: Mapped[float] = mapped_column(Float, default=1.0)
    price: Mapped[float | None] = mapped_column(Float, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)


class ModelVersion(db.Model):
    """A trained model file; the newest ``active`` one per site is served."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_site", "site_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1000))
    n_items: Mapped[int] = mapped_column(Integer, default=0)
    n_users: Mapped[int] = mapped_column(Integer, default=0)
    n_interactions: Mapped[int] = mapped_column(BigInteger, default=0)
    fit_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminUser(db.Model):
    __tablename__ = "admin_users"
    # never hand a removed account's id to somebody new (SQLite would reuse the highest id)
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16), default="owner")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RefusedRequest(db.Model):
    """Widget requests of a site the API refused, counted per origin and reason (personalize.refusals).

    A small record (at most ``refusals.KEEP`` rows per site), so the site's page can say why
    a shop's pages get nothing: "12 requests from https://other.example refused: origin not allowed".
    """

    __tablename__ = "refused_requests"
    __table_args__ = (UniqueConstraint("site_id", "origin", "reason", name="uq_refused_requests_site_origin_reason"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(300), default="")
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
