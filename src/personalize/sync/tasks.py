"""The sync engine's background jobs: plain functions of JSON-able keyword arguments.

:mod:`personalize.jobs` registers them by name and runs them in an application
context, in-process today; a distributed queue can run the very same functions.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ..db import db
from ..models import utcnow
from ..records import SegmentChange
from ..connectors import ConnectorContext
from .connections import connection_settings, connector_class
from .engine import AlreadyRunning, apply_records, make_http, run_sync
from .models import Connection, SyncRun, WebhookDelivery
from .push import push_changes


def sync_connection(site_id: int, connection: str, trigger: str = "schedule", streams: list[str] | None = None, full: bool = False) -> dict[str, Any]:
    """Pull a connection's streams (the ``sync`` job)."""
    try:
        return run_sync(site_id, connection, streams=streams, trigger=trigger, full=full)
    except AlreadyRunning as exc:
        return {"status": "skipped", "message": str(exc)}


def push_segment_changes(site_id: int, connection: str, target: str, changes: list[dict[str, Any]], trigger: str = "segments") -> dict[str, Any]:
    """Push segment changes given as dicts (the ``push`` job): ``segment``, ``profile_id``, ``added``, ``identities``."""
    records = [
        SegmentChange(
            segment=c["segment"], profile_id=int(c["profile_id"]), added=bool(c["added"]),
            identities=dict(c.get("identities") or {}), segment_id=c.get("segment_id"),
        )
        for c in changes
    ]
    summary = push_changes(site_id, connection, target, records, trigger=trigger)
    summary["results"] = [r.__dict__ for r in summary["results"]]
    return summary


def process_webhooks(connection_id: int | None = None, limit: int = 500) -> dict[str, int]:
    """Store the records of received webhook deliveries not processed yet (the ``webhooks`` job)."""
    q = select(WebhookDelivery).where(WebhookDelivery.processed_at.is_(None))
    if connection_id is not None:
        q = q.where(WebhookDelivery.connection_id == connection_id)
    done = failed = 0
    for delivery in db.session.scalars(q.order_by(WebhookDelivery.id).limit(limit)).all():
        conn = db.session.get(Connection, delivery.connection_id)
        try:
            cls = connector_class(conn.connector)
            connector = cls(ConnectorContext(settings=connection_settings(conn), http=make_http(), started_at=utcnow()))
            records = list(connector.parse_webhook(delivery.headers or {}, delivery.body.encode()))
            apply_records(conn.site_id, conn, records)
            delivery.error = ""
            done += 1
        except Exception as exc:  # keep the delivery with its error; the others go on
            db.session.rollback()
            delivery = db.session.get(WebhookDelivery, delivery.id)
            delivery.error = f"{type(exc).__name__}: {exc}"[:1000]
            failed += 1
        delivery.processed_at = utcnow()
        db.session.commit()
    return {"processed": done, "failed": failed}


def due_connections(now: datetime | None = None) -> list[tuple[int, str]]:
    """Enabled connections with a schedule whose last pull started at least that long ago."""
    now = now or utcnow()
    last = dict(
        db.session.execute(
            select(SyncRun.connection_id, func.max(SyncRun.started_at)).where(SyncRun.kind == "pull").group_by(SyncRun.connection_id)
        ).all()
    )
    due = []
    for conn in db.session.scalars(select(Connection).where(Connection.enabled.is_(True), Connection.schedule_minutes.is_not(None))):
        started = last.get(conn.id)
        if started is None or now - started >= timedelta(minutes=conn.schedule_minutes):
            due.append((conn.site_id, conn.name))
    return due


def webhook_body(payload: Any) -> str:
    return payload if isinstance(payload, str) else json.dumps(payload)
