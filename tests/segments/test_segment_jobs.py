"""Segment work as jobs: the scheduled rebuild of segments with relative dates, and API rebuilds on the job runner."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from personalize import jobs
from personalize.db import db
from personalize.models import utcnow
from personalize.profiles import ingest_events, profile_for_visitor, set_attributes
from personalize.segments.bulk import rebuild_segment
from personalize.segments.models import Segment, SegmentChange, SegmentMember
from personalize.segments.store import create_segment, get_segment
from personalize.sites import get_site

RECENT = {"behaviour": {"event": "product_viewed", "category": "tea", "within_days": 7}}
RECENT_VIP = {"and": [{"segment": "recent-tea"}, {"field": "attributes.vip", "op": "eq", "value": True}]}
EVER = {"behaviour": {"event": "product_viewed", "category": "tea"}}


def members(site_id: int, key: str) -> set[int]:
    seg = get_segment(site_id, key)
    return set(db.session.scalars(select(SegmentMember.profile_id).where(SegmentMember.segment_id == seg.id)))


def stored_count(site_id: int, key: str) -> int:
    db.session.expire_all()
    return get_segment(site_id, key).member_count


def drifter(site_id: int, days_ago: float) -> int:
    """A VIP profile whose only tea view was ``days_ago`` days before now."""
    ts = int((utcnow() - timedelta(days=days_ago)).timestamp() * 1000)
    ingest_events(get_site(site_id), [{"id": f"d-{days_ago}", "type": "product_viewed", "visitor": "drifter", "product_id": "tea-pot", "ts": ts}])
    pid = profile_for_visitor(site_id, "drifter")
    set_attributes(site_id, pid, {"vip": True}, "crm")
    return pid


def test_the_job_drops_members_once_the_clock_passes_the_window(app, site):
    for key, rule in (("recent-tea", RECENT), ("recent-tea-vip", RECENT_VIP), ("tea-ever", EVER)):
        create_segment(site.id, {"key": key, "rule": rule})
        rebuild_segment(site.id, key)
    pid = drifter(site.id, days_ago=1)
    # the live update after the event and the attribute put the profile in all three
    assert all(pid in members(site.id, k) for k in ("recent-tea", "recent-tea-vip", "tea-ever"))
    ever_rebuilt = get_segment(site.id, "tea-ever").rebuilt_at
    last_change = db.session.scalar(select(func.max(SegmentChange.id)))

    # six days on the view is still inside the window: nothing moves
    done = jobs.run("segments_relative", now=(utcnow() + timedelta(days=5)).isoformat() + "Z")
    assert list(done) == [f"{site.id}/recent-tea", f"{site.id}/recent-tea-vip"]  # in dependency order; tea-ever untouched
    assert pid in members(site.id, "recent-tea")

    # eight days on it is not: the profile leaves both time-bound segments without any event
    done = jobs.run("segments_relative", site_id=site.id, now=(utcnow() + timedelta(days=7)).isoformat())
    assert done[f"{site.id}/recent-tea"]["left"] == 1 and done[f"{site.id}/recent-tea-vip"]["left"] == 1
    assert pid not in members(site.id, "recent-tea") and pid not in members(site.id, "recent-tea-vip")
    assert pid in members(site.id, "tea-ever")
    assert get_segment(site.id, "tea-ever").rebuilt_at == ever_rebuilt
    for key in ("recent-tea", "recent-tea-vip"):
        assert stored_count(site.id, key) == len(members(site.id, key))
    feed = db.session.execute(
        select(Segment.key, SegmentChange.profile_id, SegmentChange.change)
        .join(Segment, Segment.id == SegmentChange.segment_id).where(SegmentChange.id > last_change).order_by(SegmentChange.id)
    ).all()
    assert feed == [("recent-tea", pid, "left"), ("recent-tea-vip", pid, "left")]


def test_the_scheduler_runs_the_job_on_its_interval(app, site):
    app.config["SEGMENT_RELATIVE_MINUTES"] = 30
    create_segment(site.id, {"key": "recent-tea", "rule": RECENT})
    pid = drifter(site.id, days_ago=8)
    db.session.commit()

    def stale() -> None:
        """Membership as it was three days ago, when the view was inside the window."""
        rebuild_segment(site.id, "recent-tea", utcnow() - timedelta(days=3))
        assert pid in members(site.id, "recent-tea")

    def tick(at: float) -> None:
        scheduler.run_once(clock=lambda: at)
        jobs.runner(app).wait(60)
        db.session.rollback()  # read what the job committed

    scheduler = jobs.Scheduler(app)
    stale()
    tick(1000.0)
    assert pid not in members(site.id, "recent-tea")
    stale()
    tick(1000.0 + 29 * 60)  # not due yet
    assert pid in members(site.id, "recent-tea")
    tick(1000.0 + 30 * 60)
    assert pid not in members(site.id, "recent-tea")

    app.config["SEGMENT_RELATIVE_MINUTES"] = 0  # off
    stale()
    tick(10_000_000.0)
    assert pid in members(site.id, "recent-tea")


def test_an_api_rebuild_runs_on_the_job_runner_without_a_broker(app, site, client, membership_threads):
    threads = membership_threads
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    r = client.post("/api/v1/segments", json={"key": "buyers", "rule": {"field": "orders.count", "op": "gte", "value": 1}}, headers=auth)
    assert r.status_code == 201
    jobs.runner(app).wait(60)
    body = client.get("/api/v1/segments/buyers", headers=auth).json
    assert body["status"] == "ready" and body["member_count"] == 24
    assert threads and all(name.startswith("personalize-job") for name in threads)
    # a rebuild asked for again finds nothing to change
    assert client.post("/api/v1/segments/buyers/rebuild", headers=auth).status_code == 202
    jobs.runner(app).wait(60)
    assert client.get("/api/v1/segments/buyers", headers=auth).json["member_count"] == 24


def test_with_a_broker_an_api_rebuild_is_queued_for_the_workers(app, site, client, broker_queue):
    auth = {"Authorization": f"Bearer {site.secret_key}"}
    r = client.post("/api/v1/segments", json={"key": "buyers", "rule": {"field": "orders.count", "op": "gte", "value": 1}}, headers=auth)
    assert r.status_code == 201
    # nothing ran in the web process: the job waits on the broker
    assert client.get("/api/v1/segments/buyers", headers=auth).json["status"] == "building"
    task, args, kwargs = broker_queue.take()
    assert task == "personalize.run_job"
    assert args == ["segment_rebuild"] and kwargs == {"job_kwargs": {"site_id": site.id, "key": "buyers"}}
    # what a worker does with it: the same registered job
    jobs.run(args[0], **kwargs["job_kwargs"])
    body = client.get("/api/v1/segments/buyers", headers=auth).json
    assert body["status"] == "ready" and body["member_count"] == 24
