"""``GET /api/v1/site`` (secret key), ``GET /api/v1/health`` and ``GET /api/v1/ready``.

``/health`` is for a process supervisor: is this process alive and can it reach
its database? ``/ready`` is for a load balancer and for people: every part the
server uses, each with a state of ``ok``, ``off`` (not configured: the embedded
default), ``degraded`` (unreachable, but the server works around it) or
``error`` (requests will fail). It answers 503 only on an ``error``; a database that
cannot be reached, or an SQLite file another program holds locked for writing, is one.
"""

from __future__ import annotations

import os

from flask import current_app
from sqlalchemy import select, text

from ..db import db
from . import bp
from .auth import secret_site


@bp.get("/site")
def site_info():
    site = secret_site()
    return {"id": site.id, "name": site.name, "public_key": site.public_key, "allowed_origins": site.allowed_origins or []}


#: how long the readiness check waits for SQLite's write lock before calling the database not ready
SQLITE_WRITE_PROBE_MS = 1000


def _database(writable: bool = False) -> dict[str, str]:
    try:
        db.session.execute(text("SELECT 1"))
        if writable and db.engine.dialect.name == "sqlite":
            _sqlite_writable()
    except Exception as exc:  # the check reports; it must not fail itself
        db.session.rollback()
        return {"state": "error", "detail": f"{type(exc).__name__}"}
    return {"state": "ok", "detail": db.engine.dialect.name}


def _sqlite_writable() -> None:
    """Raise if SQLite's write lock cannot be had soon: a file locked by another program takes events no more,
    though reads (write-ahead log) still work."""
    with db.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        waited = raw.execute("PRAGMA busy_timeout").fetchone()[0]
        raw.execute(f"PRAGMA busy_timeout = {min(waited, SQLITE_WRITE_PROBE_MS)}")
        try:
            if not raw.in_transaction:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
        finally:
            raw.execute(f"PRAGMA busy_timeout = {waited}")


@bp.get("/health")
def health():
    database = _database()
    ok = database["state"] == "ok"
    return {"status": "ok" if ok else "degraded", "database": "ok" if ok else f"error: {database['detail']}"}, 200 if ok else 503


def _models() -> dict[str, str]:
    """Whether this process has a model for each site that has trained one."""
    from ..models import ModelVersion
    from ..recommend.service import model_cache

    try:
        sites = db.session.scalars(select(ModelVersion.site_id).where(ModelVersion.active.is_(True)).distinct()).all()
    except Exception as exc:
        db.session.rollback()
        return {"state": "error", "detail": type(exc).__name__}
    if not sites:
        return {"state": "off", "detail": "no model trained yet: best sellers are served (`personalize train`)"}
    cache = model_cache()
    missing = [site_id for site_id in sites if cache.get(site_id) is None]
    if missing:
        return {"state": "degraded", "detail": f"no loadable model for site(s) {', '.join(map(str, missing))}: best sellers are served"}
    versions = ", ".join(f"site {site_id}: version {cache.get(site_id).version}" for site_id in sites)
    return {"state": "ok", "detail": f"loaded ({versions})"}


@bp.get("/ready")
def ready():
    from ..cache import shared_cache
    from ..queue import broker_status

    parts = {"database": _database(writable=True)}  # events need writes, not only reads
    parts["models"] = _models() if parts["database"]["state"] == "ok" else {"state": "error", "detail": "database unreachable"}
    parts["redis"] = shared_cache().status()
    parts["broker"] = broker_status(current_app)
    states = {p["state"] for p in parts.values()}
    status = "error" if "error" in states else "degraded" if "degraded" in states else "ok"
    body = {"status": status, "version": current_app.config["VERSION"], "process": os.getpid(), **parts}
    return body, 503 if status == "error" else 200
