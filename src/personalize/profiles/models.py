"""Tables of the single customer view beyond the core schema: attributes with their
source and time, the record of merges, and each site's identity-signing secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import BigId, utcnow


class ProfileAttribute(db.Model):
    """One attribute of one profile, with where it came from and when.

    ``value`` keeps the JSON value as given; ``vtype`` (``s`` string, ``n`` number,
    ``b`` boolean, ``l`` list, ``o`` object, ``z`` null), ``value_text`` and
    ``value_num`` are typed shadows of it that rule segments compare in SQL.
    """

    __tablename__ = "profile_attributes"
    __table_args__ = (
        UniqueConstraint("profile_id", "name", name="uq_profile_attributes_profile_name"),
        Index("ix_profile_attributes_site_name", "site_id", "name"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    vtype: Mapped[str] = mapped_column(String(1))
    value_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    value_num: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ProfileMerge(db.Model):
    """A profile folded into another: the alias that keeps old profile ids resolving."""

    __tablename__ = "profile_merges"
    # not unique: SQLite may hand a deleted profile's id to a new profile, which can merge again
    __table_args__ = (Index("ix_profile_merges_site_merged", "site_id", "merged_profile_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    kept_profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    merged_profile_id: Mapped[int] = mapped_column(BigId)
    signal: Mapped[str] = mapped_column(String(32))
    moved: Mapped[dict] = mapped_column(JSON, default=dict)
    merged_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SigningSecret(db.Model):
    """The secret a shop signs identities with (HMAC), one per site."""

    __tablename__ = "signing_secrets"
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

