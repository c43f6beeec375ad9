"""Tables of segmentation: rule segments and their members, the membership outbox,
computed scores per profile, and the contact policy with its log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import BigId, utcnow
from ..profiles import models as _profile_models  # noqa: F401  (their tables belong to the same schema)


class Segment(db.Model):
    """A named rule over profiles; ``rule`` is the JSON tree described in docs/segments.md."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("site_id", "key", name="uq_segments_site_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="building")
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    rebuilt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SegmentMember(db.Model):
    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_profile", "profile_id"),)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime)


class SegmentChange(db.Model):
    """A profile entering or leaving a segment: the outbox connectors read by ``id`` cursor."""

    __tablename__ = "segment_changes"
    __table_args__ = (Index("ix_segment_changes_site_id", "site_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    change: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(DateTime)


class ProfileScore(db.Model):
    """Computed scores of one customer: RFM, value/attrition/potential, cluster and purchase propensity."""

    __tablename__ = "profile_scores"
    __table_args__ = (Index("ix_profile_scores_site", "site_id"),)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    orders: Mapped[int] = mapped_column(Integer)
    total_spent: Mapped[float] = mapped_column(Float)
    avg_order: Mapped[float] = mapped_column(Float)
    recency_days: Mapped[float] = mapped_column(Float)
    tenure_days: Mapped[float] = mapped_column(Float)
    r_score: Mapped[int] = mapped_column(Integer)
    f_score: Mapped[int] = mapped_column(Integer)
    m_score: Mapped[int] = mapped_column(Integer)
    rfm: Mapped[str] = mapped_column(String(3))
    rfm_segment: Mapped[str] = mapped_column(String(40))
    value: Mapped[float] = mapped_column(Float)
    attrition: Mapped[float] = mapped_column(Float)
    expected_orders: Mapped[float] = mapped_column(Float)
    potential: Mapped[float] = mapped_column(Float)
    cluster: Mapped[int] = mapped_column(Integer)
    cluster_name: Mapped[str] = mapped_column(String(80))
    computed_at: Mapped[datetime] = mapped_column(DateTime)
    #: P(an order in the next 30 days), calibrated (segments/propensity.py); NULL before it is computed
    order_propensity: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the likeliest categories to be bought in the next 30 days, ``{"Tea": 0.31, …}`` (at most three);
    #: NULL when the shop's products have no categories
    category_propensity: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class ScoreRun(db.Model):
    """One recomputation of a site's scores: the fitted model parameters and timings."""

    __tablename__ = "score_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    as_of: Mapped[datetime] = mapped_column(DateTime)
    customers: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ContactPolicy(db.Model):
    """At most ``per_day`` / ``per_week`` messages per contact on one channel (NULL: no limit)."""

    __tablename__ = "contact_policies"
    __table_args__ = (UniqueConstraint("site_id", "channel", name="uq_contact_policies_site_channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    per_week: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ContactLog(db.Model):
    """One message sent to a profile on a channel (what the policy counts)."""

    __tablename__ = "contact_log"
    __table_args__ = (Index("ix_contact_log_profile", "profile_id", "channel", "sent_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    sent_at: Mapped[datetime] = mapped_column(DateTime)


__all__ = ["ContactLog", "ContactPolicy", "ProfileScore", "ScoreRun", "Segment", "SegmentChange", "SegmentMember"]
