"""Which sites an editor or viewer may see. Owners see every site and need no rows here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..models import utcnow


class AdminSiteAccess(db.Model):
    """One admin user may work on one site (with the rights of their role)."""

    __tablename__ = "admin_site_access"
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
