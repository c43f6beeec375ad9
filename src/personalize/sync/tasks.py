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
from .connections import connector_class, connector_context, get_connection
from .engine import AlreadyRunning, apply_records, make_http, run_sync
from .models import Connection, SyncRun, WebhookDelivery
from .push import push_changes
from .recommendations import positions_for, push_recommendations


def sync_connection(site_id: int, connection: str, trigger: str = "schedule", streams: list[str] | None = None, full: bool = False) -> dict[str, Any]:
    """Pull a connection's streams (the ``sync`` job), then push its people's recommendations
    when it is set to (:mod:`.recommendations`)."""
    try:
        summary = run_sync(site_id, connection, streams=streams, trigger=trigger, full=full)
    except AlreadyRunning as exc:
        return {"status": "skipped", "message": str(exc)}
    conn = get_connection(site_id, connection)
    if conn is not None and positions_for(conn) > 0 and summary.get("status") != "failed":
        try:
            pushed = push_recommendations(site_id, connection, trigger=trigger[:16])
        except AlreadyRunning as exc:
            pushed = {"status": "skipped", "message": str(exc)}
        summary["recommendations"] = {k: v for k, v in pushed.items() if k != "results"}
    return summary


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


OUTBOX_STATE = "_segment_outbox"
OUTBOX_BATCH = 500


def push_segment_outbox(connection_id: int, max_batches: int = 20) -> dict[str, Any]:
    """Push the segments service's outbox of membership changes to a connection (the ``push_segments`` job).

    Reads ``segment_changes`` after the connection's own cursor, keeps the segments
    it is set to push, pushes them to its ``push_target``, and moves the cursor only
    past batches that were attempted (a refused token or an outage leaves it where
    it was, so nothing is lost). Running it twice pushes nothing twice.
    """
    from .engine import load_state, save_state

    conn = db.session.get(Connection, connection_id)
    if conn is None or not conn.enabled or not conn.push_target:
        return {"pushed": 0, "status": "skipped"}
    try:
        from ..segments.outbox import changes_after
    except ImportError:
        return {"pushed": 0, "status": "skipped", "message": "no segments service"}
    after = int((load_state(conn.id, OUTBOX_STATE) or {}).get("after", 0))
    wanted = set(conn.push_segments or [])
    pushed = 0
    status = "succeeded"
    for _ in range(max_batches):
        rows = changes_after(conn.site_id, after, limit=OUTBOX_BATCH)
        if not rows:
            break
        changes = [
            SegmentChange(segment=r["segment"], profile_id=int(r["profile_id"]), added=r["change"] == "entered",
                          identities=dict(r.get("identities") or {}))
            for r in rows if not wanted or r["segment"] in wanted
        ]
        if changes:
            try:
                summary = push_changes(conn.site_id, conn.name, conn.push_target, changes, trigger="outbox")
            except AlreadyRunning:  # another push of this connection is on it; it reads the same outbox
                return {"pushed": pushed, "status": "skipped", "after": after}
            if summary["retry"]:
                message = summary["fatal"] or summary["message"]
                return {"pushed": pushed, "status": "failed", "message": message}
            pushed += summary["records_out"]
            status = summary["status"] if summary["status"] != "succeeded" else status
        after = rows[-1]["id"]
        save_state(conn.id, OUTBOX_STATE, {"after": after})
        db.session.commit()
    return {"pushed": pushed, "status": status, "after": after}


def pushing_connections(site_id: int | None = None) -> list[int]:
    """Enabled connections that push segment changes."""
    q = select(Connection.id).where(Connection.enabled.is_(True), Connection.push_target.is_not(None))
    if site_id is not None:
        q = q.where(Connection.site_id == site_id)
    return list(db.session.scalars(q.order_by(Connection.id)))


def process_webhooks(connection_id: int | None = None, limit: int = 500) -> dict[str, int]:
    """Store the records of received webhook deliveries not processed yet (the ``webhooks`` job)."""
    q = select(WebhookDelivery).where(WebhookDelivery.processed_at.is_(None))
    if connection_id is not None:
        q = q.where(WebhookDelivery.connection_id == connection_id)
    done = failed = 0
    for delivery in db.session.scalars(q.order_by(WebhookDelivery.id).limit(limit)).all():
        delivery_id, error = delivery.id, ""
        conn = db.session.get(Connection, delivery.connection_id)
        try:
            cls = connector_class(conn.connector)
            connector = cls(connector_context(conn, make_http(cls), utcnow()))
            records = list(connector.parse_webhook(delivery.headers or {}, delivery.body.encode()))
            apply_records(conn.site_id, conn, records)
            done += 1
        except Exception as exc:  # keep the delivery with its error; the others go on
            db.session.rollback()
            error = f"{type(exc).__name__}: {exc}"[:1000]
            failed += 1
        # a privacy erase deletes the payloads naming the person, this one included
        delivery = db.session.get(WebhookDelivery, delivery_id, populate_existing=True)
        if delivery is not None:
            delivery.error = error
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
