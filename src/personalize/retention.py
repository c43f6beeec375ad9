"""Data retention: raw events and connector logs are deleted once older than their settings allow.

- ``EVENT_RETENTION_DAYS`` (0, the default: kept until the person is erased): raw events
  whose ``occurred_at`` is older are deleted. What the recommender learns from is not an
  event but an *interaction* (view, cart, purchase; written when the event is stored), and
  orders are rows of their own, so models, popularity, customer scores and revenue keep the
  whole history. What goes with the events: the profile timeline before the cut, behaviour
  conditions of segment rules looking further back than the cut, and the dashboard's
  recommendation figures (impressions, clicks, holdout) for days before the cut;
- ``SYNC_LOG_RETENTION_DAYS`` (90): finished sync runs (the run log) and processed webhook
  payloads older than that are deleted; the newest run of each connection and kind stays,
  since the scheduler reads when it started.

:func:`prune` deletes in batches of ``batch_size`` rows, one short transaction each, so the
event API is never blocked for long; ``max_batches`` bounds one call (the next run goes on).
It is the ``retention`` job: the in-process scheduler (or a Celery worker) runs it hourly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, delete, func, select

from .db import db
from .models import Event, Site, utcnow

BATCH_SIZE = 5000
EVERY_SECONDS = 3600.0


def _days(name: str) -> float:
    value = current_app.config.get(name) or 0
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def enabled(config: dict[str, Any]) -> bool:
    """Whether any retention setting asks for pruning."""
    return any(float(config.get(n) or 0) > 0 for n in ("EVENT_RETENTION_DAYS", "SYNC_LOG_RETENTION_DAYS"))


def _delete_in_batches(model, where, batch_size: int, max_batches: int | None, order_by=None) -> int:
    """Delete the rows of ``model`` matching ``where`` by id, ``batch_size`` at a time; commits each batch."""
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        q = select(model.id).where(where).order_by(order_by if order_by is not None else model.id).limit(batch_size)
        ids = list(db.session.scalars(q))
        if not ids:
            break
        db.session.execute(delete(model).where(model.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)
        batches += 1
        if len(ids) < batch_size:
            break
    return deleted


def prune_events(now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> int:
    """Delete raw events older than ``EVENT_RETENTION_DAYS`` (by the site/time index); returns how many."""
    days = _days("EVENT_RETENTION_DAYS")
    if not days:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    total = 0
    for site_id in list(db.session.scalars(select(Site.id).order_by(Site.id))):
        total += _delete_in_batches(Event, and_(Event.site_id == site_id, Event.occurred_at < cutoff), batch_size, max_batches,
                                    order_by=Event.occurred_at)  # walks ix_events_site_time
    return total


def prune_sync_logs(now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> dict[str, int]:
    """Delete finished runs and processed webhook payloads older than ``SYNC_LOG_RETENTION_DAYS``."""
    days = _days("SYNC_LOG_RETENTION_DAYS")
    if not days:
        return {"sync_runs": 0, "webhook_deliveries": 0}
    from .sync.models import SyncRun, WebhookDelivery

    cutoff = (now or utcnow()) - timedelta(days=days)
    newest = select(func.max(SyncRun.id)).group_by(SyncRun.connection_id, SyncRun.kind)
    runs = _delete_in_batches(
        SyncRun,
        and_(SyncRun.finished_at.is_not(None), SyncRun.finished_at < cutoff, SyncRun.id.not_in(newest)),
        batch_size, max_batches,
    )
    deliveries = _delete_in_batches(
        WebhookDelivery, and_(WebhookDelivery.processed_at.is_not(None), WebhookDelivery.processed_at < cutoff),
        batch_size, max_batches,
    )
    return {"sync_runs": runs, "webhook_deliveries": deliveries}


def prune(now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> dict[str, int]:
    """The ``retention`` job: everything past its retention setting, deleted. Returns counts per table."""
    try:
        out = {"events": prune_events(now, batch_size, max_batches)}
        out.update(prune_sync_logs(now, batch_size, max_batches))
    except Exception:
        db.session.rollback()
        raise
    return out
