"""The experiments table: one A/B/n test of a page slot, its arms and its life."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import utcnow

DRAFT, RUNNING, STOPPED, ROLLED_OUT = "draft", "running", "stopped", "rolled_out"


class Experiment(db.Model):
    """``arms``: ``[{"name": "Best sellers", "override": {"strategy": "popular"}}, …]``; the first
    arm is the control. ``winner`` is the index of the arm rolled out, if one was."""

    __tablename__ = "experiments"
    __table_args__ = (Index("ix_experiments_site_status", "site_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    slot: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    arms: Mapped[list] = mapped_column(JSON, default=list)
    metric: Mapped[str] = mapped_column(String(32), default="revenue_per_visitor")
    target_visitors: Mapped[int] = mapped_column(Integer, default=5000)
    winner: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
