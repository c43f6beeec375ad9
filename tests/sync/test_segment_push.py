"""Segment changes flow from the segments service's outbox to connections that push them."""

from __future__ import annotations

import csv

import pytest

from personalize import jobs
from personalize.sync import engine
from personalize.sync.connections import ConnectionSettingsError, save_connection, site_files_root


@pytest.fixture
def exports(shop):
    """The folder ``exports`` inside the site's files folder on the server, with a contacts file."""
    folder = site_files_root(shop.id) / "exports"
    folder.mkdir(parents=True)
    with (folder / "contacts.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "email", "plan"])
        writer.writerows([["1", "gold1@example.com", "gold"], ["2", "gold2@example.com", "gold"], ["3", "free@example.com", "free"]])
    return folder


def members(folder):
    path = folder / "segment_members.csv"
    return sorted((r["segment"], r["email"]) for r in csv.DictReader(path.open())) if path.exists() else []


def test_outbox_changes_are_pushed_once_to_the_connections_that_push(app, shop, exports):
    from personalize.segments.bulk import rebuild_segment
    from personalize.segments.store import create_segment

    conn = save_connection(shop.id, "files", {"folder": "exports"}, push_target="file", push_segments=["gold"])
    assert engine.run_sync(shop.id, "files")["status"] == "succeeded"
    for key, plan in (("gold", "gold"), ("free", "free")):
        create_segment(shop.id, {"key": key, "rule": {"field": "attributes.plan", "op": "eq", "value": plan}})
        rebuild_segment(shop.id, key)
    jobs.runner(app).wait(30)  # the segment_membership_changed hook queued a push
    assert members(exports) == [("gold", "gold1@example.com"), ("gold", "gold2@example.com")], "only the chosen segment"
    again = jobs.run("push_segments", connection_id=conn.id)
    assert again["pushed"] == 0, "the cursor moved past what was pushed"
    log = engine.run_log(shop.id, "files")
    assert log[0]["kind"] == "push" and log[0]["trigger"] == "outbox" and log[0]["records_out"] == 2


def test_an_outage_leaves_the_outbox_cursor_where_it_was(app, shop, exports):
    from personalize.segments.bulk import rebuild_segment
    from personalize.segments.store import create_segment

    conn = save_connection(shop.id, "files", {"folder": "exports"}, push_target="file")
    engine.run_sync(shop.id, "files")
    save_connection(shop.id, "files", {"folder": "exports/gone"})
    create_segment(shop.id, {"key": "gold", "rule": {"field": "attributes.plan", "op": "eq", "value": "gold"}})
    rebuild_segment(shop.id, "gold")
    jobs.runner(app).wait(30)
    failed = jobs.run("push_segments", connection_id=conn.id)
    assert failed["status"] == "failed"
    save_connection(shop.id, "files", {"folder": "exports"})
    assert jobs.run("push_segments", connection_id=conn.id)["pushed"] == 2
    assert members(exports) == [("gold", "gold1@example.com"), ("gold", "gold2@example.com")]


def test_a_push_target_the_connector_does_not_offer_is_refused(shop, exports):
    with pytest.raises(ConnectionSettingsError, match="cannot push to 'tags'"):
        save_connection(shop.id, "files", {"folder": "exports"}, push_target="tags")


def test_pushed_additions_count_against_the_contact_policy(app, shop, exports):
    """At most N messages per day: each addition pushed counts once; a failed push is not counted."""
    from sqlalchemy import func, select

    from personalize.db import db
    from personalize.records import SegmentChange
    from personalize.segments.models import ContactLog
    from personalize.segments.policy import set_policy
    from personalize.sync.push import push_changes

    save_connection(shop.id, "files", {"folder": "exports"}, push_target="file")
    assert engine.run_sync(shop.id, "files")["status"] == "succeeded"
    from personalize.models import Identity

    pid = db.session.scalar(select(Identity.profile_id).where(Identity.site_id == shop.id, Identity.value == "gold1@example.com"))
    set_policy(shop.id, "any", {"per_day": 1})
    changes = [SegmentChange("gold", pid, True), SegmentChange("vip", pid, True)]
    result = push_changes(shop.id, "files", "file", changes)
    assert [r.status for r in result["results"]] == ["ok", "skipped"]
    sent = db.session.scalar(select(func.count()).select_from(ContactLog).where(ContactLog.profile_id == pid))
    assert sent == 1
    again = push_changes(shop.id, "files", "file", [SegmentChange("late", pid, True)])
    assert [r.status for r in again["results"]] == ["skipped"], "the day's one message is used up"
    assert [r.status for r in push_changes(shop.id, "files", "file", [SegmentChange("gold", pid, False)])["results"]] == ["ok"], "leaving is never held back"

    set_policy(shop.id, "any", {"per_day": 5})
    save_connection(shop.id, "files", {"folder": "exports/gone"})
    failed = push_changes(shop.id, "files", "file", [SegmentChange("vip", pid, True)])
    assert [r.status for r in failed["results"]] == ["failed"]
    assert db.session.scalar(select(func.count()).select_from(ContactLog).where(ContactLog.profile_id == pid)) == 1, "a failed push is not counted"
