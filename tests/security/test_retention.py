"""Data retention: old raw events and connector logs are pruned, in batches, on the scheduler's
clock, while models, popularity, scores and the dashboard keep working. Clocks are injected:
nothing here sleeps."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Event, Interaction, Order, utcnow

# the shared fixture's shop events happen on 2023-11-14 (ts 1_700_000_000_000)
OLD_DAY = datetime(2023, 11, 14)


def _count(model, site_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(model.site_id == site_id))


def _recent_events(site, now: datetime) -> list[dict]:
    """A visitor of last week, with a recommendation list shown, clicked and bought from."""
    ts = int((now - timedelta(days=7)).timestamp() * 1000)
    return [
        {"id": "new-imp", "type": "rec_impression", "visitor": "newcomer", "rec_id": "r-new", "slot": "home",
         "items": ["run-shoe", "tea-pot"], "strategy": "personalized", "ts": ts},
        {"id": "new-click", "type": "rec_clicked", "visitor": "newcomer", "rec_id": "r-new", "slot": "home",
         "product_id": "run-shoe", "position": 0, "strategy": "personalized", "ts": ts + 1000},
        {"id": "new-view", "type": "product_viewed", "visitor": "newcomer", "product_id": "run-shoe", "rec_id": "r-new", "ts": ts + 2000},
        {"id": "new-order", "type": "order_completed", "visitor": "newcomer", "order_id": "o-new", "rec_id": "r-new", "ts": ts + 3000,
         "items": [{"product_id": "run-shoe", "quantity": 1, "price": 120.0}]},
    ]


def test_old_events_go_in_batches_and_what_models_learn_from_stays(app, ctx, site):
    from personalize import retention
    from personalize.insights.report import site_report
    from personalize.models import Site
    from personalize.profiles import ingest_events
    from personalize.recommend.service import recommend_for, train_site
    from personalize.segments.bulk import rebuild_segment
    from personalize.segments.store import create_segment

    now = utcnow()
    ingest_events(db.session.get(Site, site.id), _recent_events(site, now))
    old_events = db.session.scalar(select(func.count()).select_from(Event).where(Event.site_id == site.id, Event.occurred_at < OLD_DAY + timedelta(days=1)))
    assert old_events > 50 and _count(Event, site.id) == old_events + 4
    interactions, orders = _count(Interaction, site.id), _count(Order, site.id)
    before = train_site(site.id)
    runner_list = [r["id"] for r in recommend_for(db.session.get(Site, site.id), "runner-3", "home", 4).as_json()["items"]]
    report_before = site_report(site.id, days=30, today=now.date())
    create_segment(site.id, {"key": "shoe-lookers", "rule": {"behaviour": {"event": "product_viewed", "product_id": "run-shoe", "within_days": 30}}})

    # off (the default) keeps everything, however late it is
    assert app.config["EVENT_RETENTION_DAYS"] == 0
    assert retention.prune(now=now + timedelta(days=3650))["events"] == 0

    app.config["EVENT_RETENTION_DAYS"] = 30
    # an injected clock: before the shop's events were 30 days old, nothing was due
    assert retention.prune_events(now=OLD_DAY + timedelta(days=29)) == 0
    # a bounded run deletes whole batches and stops; the next run goes on where it stopped
    assert retention.prune_events(now=now, batch_size=7, max_batches=2) == 14
    assert retention.prune_events(now=now, batch_size=7) == old_events - 14
    assert retention.prune_events(now=now) == 0
    assert _count(Event, site.id) == 4, "last week's events stay"

    # what models, popularity, customer scores and revenue read (interactions, orders) is untouched
    assert (_count(Interaction, site.id), _count(Order, site.id)) == (interactions, orders)
    after = train_site(site.id)
    assert (after["n_interactions"], after["n_users"], after["n_items"]) == (before["n_interactions"], before["n_users"], before["n_items"])
    assert [r["id"] for r in recommend_for(db.session.get(Site, site.id), "runner-3", "home", 4).as_json()["items"]] == runner_list
    # the dashboard (holdout included) still adds up for the days kept
    report_after = site_report(site.id, days=90, today=now.date())
    assert report_after.total.impressions == report_before.total.impressions == 1
    assert report_after.total.clicks == report_before.total.clicks == 1
    assert report_after.total.orders == report_before.total.orders == 1
    assert report_after.groups == report_before.groups and report_after.groups["personalized"].visitors == 1
    # a behaviour rule reads the events that are left
    assert rebuild_segment(site.id, "shoe-lookers")["members"] == 1


def test_sync_logs_are_pruned_but_the_newest_run_of_each_connection_stays(app, ctx, site, tmp_path):
    from personalize import retention
    from personalize.sync.connections import save_connection
    from personalize.sync.models import SyncRun, WebhookDelivery
    from personalize.sync.tasks import due_connections

    assert app.config["SYNC_LOG_RETENTION_DAYS"] == 90
    now = datetime(2026, 6, 1)
    conn = save_connection(site.id, "files", {"folder": "exports"}, schedule_minutes=60)
    old = now - timedelta(days=120)

    def run(days_ago: float, kind: str = "pull", finished: bool = True) -> SyncRun:
        at = now - timedelta(days=days_ago)
        row = SyncRun(site_id=site.id, connection_id=conn.id, kind=kind, status="succeeded" if finished else "running",
                      started_at=at, heartbeat_at=at, finished_at=at if finished else None, message=f"{days_ago} days ago")
        db.session.add(row)
        return row

    for d in (200, 150, 120):
        run(d)
    run(130, kind="push")  # the only push: stays though old
    run(100, finished=False)  # still running (a crashed run, marked by the engine): not a log yet
    run(10)
    for n, (received, processed) in enumerate(((old, old), (old, None), (now - timedelta(days=5), now - timedelta(days=5)))):
        db.session.add(WebhookDelivery(connection_id=conn.id, delivery_id=f"d{n}", body="{}", received_at=received, processed_at=processed))
    db.session.commit()

    assert retention.prune(now=now, batch_size=2) == {"events": 0, "sync_runs": 3, "webhook_deliveries": 1}
    left = sorted(db.session.scalars(select(SyncRun.message).where(SyncRun.connection_id == conn.id)))
    assert left == ["10 days ago", "100 days ago", "130 days ago"]
    assert sorted(db.session.scalars(select(WebhookDelivery.delivery_id))) == ["d1", "d2"], "unprocessed payloads are never pruned"
    assert due_connections(now) == [(site.id, "files")] and due_connections(now - timedelta(days=10)) == []

    app.config["SYNC_LOG_RETENTION_DAYS"] = 0
    run(1000)
    db.session.commit()
    assert retention.prune(now=now)["sync_runs"] == 0


def test_the_scheduler_runs_retention_hourly_through_the_job_registry(app, ctx, site):
    from personalize import jobs, retention

    assert jobs.job_function("retention") is retention.prune, "the same function runs in-process or on a Celery worker"
    app.config["EVENT_RETENTION_DAYS"] = 30
    scheduler = jobs.Scheduler(app, tick=3600)
    t = [1000.0]

    def results() -> list:
        return [f.result(timeout=30) for f in scheduler.run_once(clock=lambda: t[0])]

    def retention_runs(found: list) -> list[dict]:
        return [r for r in found if isinstance(r, dict) and "events" in r]

    first = retention_runs(results())
    assert len(first) == 1 and first[0]["events"] > 50, "the shop's 2023 events are past 30 days"
    t[0] += 600
    assert retention_runs(results()) == []
    t[0] += retention.EVERY_SECONDS
    assert retention_runs(results()) == [{"events": 0, "sync_runs": 0, "webhook_deliveries": 0}]
    app.config.update(EVENT_RETENTION_DAYS=0, SYNC_LOG_RETENTION_DAYS=0)
    t[0] += 10 * retention.EVERY_SECONDS
    assert retention_runs(results()) == [], "with retention off the job is not even submitted"
