"""The scheduler keeps models and scores fresh: a site with new behaviour is retrained (and
its scores recomputed) once its model is MODEL_REFRESH_HOURS old; an untouched site is not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from personalize import jobs
from personalize.db import db
from personalize.models import ModelVersion, utcnow
from personalize.profiles import ingest_events
from personalize.segments.models import ProfileScore
from personalize.sites import create_site, get_site


def versions(site_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.site_id == site_id))


def tick(app, scheduler, at: float) -> list:
    submitted = scheduler.run_once(clock=lambda: at)
    jobs.runner(app).wait(120)
    db.session.rollback()  # read what the jobs committed
    return submitted


def test_a_site_with_behaviour_and_no_model_is_trained_and_scored(app, site):
    app.config["MODEL_REFRESH_HOURS"] = 24
    empty, _ = create_site("No visitors yet")
    assert jobs.stale_models(24) == [site.id]  # the empty site has nothing to learn from

    tick(app, jobs.Scheduler(app), 1000.0)
    assert versions(site.id) == 1
    assert versions(empty.id) == 0
    assert db.session.scalar(select(func.count()).select_from(ProfileScore).where(ProfileScore.site_id == site.id)) > 0


def test_a_model_is_retrained_only_when_old_and_behind(app, trained):
    app.config["MODEL_REFRESH_HOURS"] = 24
    scheduler = jobs.Scheduler(app)
    assert jobs.stale_models(24) == []  # just trained
    tick(app, scheduler, 1000.0)
    assert versions(trained.id) == 1

    # a day later, but nothing new happened: still nothing to do
    later = utcnow() + timedelta(hours=25)
    assert jobs.stale_models(24, now=later) == []

    # new behaviour after the model, and the model is old: retrained on the next look
    db.session.execute(update(ModelVersion).values(created_at=utcnow() - timedelta(hours=25)))
    db.session.commit()
    ingest_events(get_site(trained.id), [{"id": "late-1", "type": "product_viewed", "visitor": "late", "product_id": "tea-pot"}])
    assert jobs.stale_models(24) == [trained.id]
    tick(app, scheduler, 1000.0 + 60)  # looked a minute ago: not yet
    assert versions(trained.id) == 1
    tick(app, scheduler, 1000.0 + 601)
    assert versions(trained.id) == 2
    assert jobs.stale_models(24) == []


def test_refresh_off_trains_nothing(app, site):
    app.config["MODEL_REFRESH_HOURS"] = 0
    submitted = tick(app, jobs.Scheduler(app), 1000.0)
    assert versions(site.id) == 0
    assert all(f.done() for f in submitted)


def test_the_train_and_scores_jobs_run_by_name(app, site):
    summary = jobs.run("train", site_id=site.id)
    assert summary["n_items"] > 0 and versions(site.id) == 1
    scores = jobs.run("scores", site_id=site.id)
    assert scores["customers"] > 0
