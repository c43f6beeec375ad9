"""``GET /api/v1/site`` (secret key) and ``GET /api/v1/health``."""

from __future__ import annotations

from sqlalchemy import text

from ..db import db
from . import bp
from .auth import secret_site


@bp.get("/site")
def site_info():
    site = secret_site()
    return {"id": site.id, "name": site.name, "public_key": site.public_key, "allowed_origins": site.allowed_origins or []}


@bp.get("/health")
def health():
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # the health check reports; it must not fail itself
        database = f"error: {type(exc).__name__}"
    status = 200 if database == "ok" else 503
    return {"status": "ok" if status == 200 else "degraded", "database": database}, status
