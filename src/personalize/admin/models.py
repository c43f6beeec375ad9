"""The admin's own tables: which sites an editor or viewer may see, and who is signed in where."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import utcnow


class AdminSiteAccess(db.Model):
    """One admin user may work on one site (with the rights of their role). Owners see every site
    and need no rows here."""

    __tablename__ = "admin_site_access"
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminSession(db.Model):
    """One signed-in browser. The cookie carries a random token; only its SHA-256 hash is kept here,
    so the table alone lets nobody sign in. Deleting the row signs the browser out."""

    __tablename__ = "admin_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    # secrets waiting to be shown once (a new secret key, a signing secret), encrypted; see admin.sessions
    pending_secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
