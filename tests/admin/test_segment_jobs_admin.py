"""The admin's segment work (saving a rule, rebuild, recompute scores) runs as jobs: on the job
runner without a broker, queued for the workers with one, and a broker that is down is an error
the admin sees, not a 500."""

from __future__ import annotations

from personalize import jobs
from personalize.segments.store import get_segment

from .conftest import post

RULE = {"key": "buyers", "name": "Buyers", "combine": "and", "mode": "builder",
        "c0_field": "orders.count", "c0_op": "gte", "c0_value": "1"}


def test_saving_a_segment_rebuilds_it_on_the_job_runner(app, as_owner, site, membership_threads):
    threads = membership_threads
    r = post(as_owner, f"/admin/sites/{site.id}/segments/new", RULE)
    assert r.status_code == 302
    jobs.runner(app).wait(60)
    assert get_segment(site.id, "buyers").member_count == 24
    assert threads and all(name.startswith("personalize-job") for name in threads), threads
    r = post(as_owner, f"/admin/sites/{site.id}/segments/buyers/rebuild", follow_redirects=True)
    assert r.status_code == 200 and "being worked out again" in r.get_data(as_text=True)
    jobs.runner(app).wait(60)
    assert get_segment(site.id, "buyers").member_count == 24


def test_with_a_broker_the_admins_work_is_queued(app, as_owner, site, broker_queue):
    r = post(as_owner, f"/admin/sites/{site.id}/scores", follow_redirects=True)
    assert r.status_code == 200 and "being recomputed" in r.get_data(as_text=True)
    _task, args, kwargs = broker_queue.take()
    assert args == ["scores"] and kwargs == {"job_kwargs": {"site_id": site.id}}


def test_a_broker_that_is_down_is_said_and_the_rule_stays_saved(app, as_owner, site):
    app.config.update(BROKER_URL="amqp://guest:guest@127.0.0.1:1//")  # nothing listens there
    try:
        r = post(as_owner, f"/admin/sites/{site.id}/segments/new", RULE, follow_redirects=True)
    finally:
        runner = app.extensions.pop("personalize.jobs", None)
        if runner is not None:
            runner.shutdown()
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "could not be queued" in page
    assert get_segment(site.id, "buyers") is not None, "the rule was saved all the same"
