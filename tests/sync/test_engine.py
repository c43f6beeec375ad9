"""The sync engine: checkpoints and resume, error classes, skipped records, the run log, secrets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from personalize.connectors import (
    AuthError,
    CheckResult,
    Connector,
    Setting,
    Stream,
    StreamError,
    TransientError,
)
from personalize.db import db
from personalize.models import Identity, Profile
from personalize.profiles.attributes import attributes_of
from personalize.records import Checkpoint, ContactRecord, ProductRecord, SkippedRecord
from personalize.sync import engine
from personalize.sync.connections import public_settings, save_connection
from personalize.sync.models import Connection, StreamState, SyncRun

PEOPLE = [ContactRecord(external_id=f"c{i}", email=f"person{i}@example.com", attributes={"plan": "gold" if i % 2 else "free"}) for i in range(50)]


class Flaky(Connector):
    """A test connector: 50 contacts, a checkpoint every 10; fails where a test says."""

    name = "flaky"
    kind = "crm"
    identity_kind = "flaky_id"
    default_mapping = {"plan": "plan"}
    settings = (Setting("token", "Token", secret=True), Setting("region", "Region", required=False))
    streams = (Stream("contacts", "contact"), Stream("products", "product"))
    fail: dict[str, Any] = {}
    pulls: list[tuple[str, Any]] = []

    def check(self):
        if self.config.get("token") != "good":
            raise AuthError("401: token expired")
        return CheckResult(True, "ok")

    def pull(self, stream: str, state: dict | None) -> Iterator[Any]:
        Flaky.pulls.append((stream, state))
        if stream == "products":
            if Flaky.fail.get("products"):
                raise StreamError("products: 400 bad request")
            yield ProductRecord("p1", "Product one")
            yield ProductRecord("", "no id")
            yield Checkpoint({"done": True})
            return
        start = (state or {}).get("pos", 0)
        for i in range(start, len(PEOPLE)):
            if Flaky.fail.get("at") == i:
                Flaky.fail.pop("at")
                raise Flaky.fail.pop("error", TransientError("503 for too long"))
            yield PEOPLE[i]
            if i % 10 == 9:
                yield Checkpoint({"pos": i + 1})
        yield SkippedRecord("no email and no id", "row 51")
        yield Checkpoint({"pos": len(PEOPLE)})


@pytest.fixture
def flaky(register, shop):
    Flaky.fail, Flaky.pulls = {}, []
    register(Flaky)
    save_connection(shop.id, "flaky", {"token": "good"})
    return shop


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_sync_stores_contacts_products_and_a_run_log(flaky):
    summary = engine.run_sync(flaky.id, "flaky")
    assert summary["streams"]["contacts"] == {"in": 50, "stored": 50, "skipped": 1, "status": "succeeded", "error": ""}
    assert summary["streams"]["products"]["stored"] == 1 and summary["streams"]["products"]["skipped"] == 1
    assert summary["status"] == "succeeded" and summary["records_in"] == 52 and summary["skipped"] == 2
    assert summary["cursor"] == {"contacts": {"pos": 50}, "products": {"done": True}}
    pid = db.session.scalar(select(Identity.profile_id).where(Identity.kind == "flaky_id", Identity.value == "c3"))
    assert db.session.get(Profile, pid).email == "person3@example.com"
    attrs = attributes_of(pid)
    assert attrs["plan"]["value"] == "gold" and attrs["plan"]["source"] == "flaky"
    assert any("row 51" in e for e in summary["errors"])


def test_an_interrupted_run_resumes_from_its_last_checkpoint_without_duplicates(flaky):
    Flaky.fail = {"at": 25}
    first = engine.run_sync(flaky.id, "flaky", streams=["contacts"])
    assert first["status"] == "failed"
    assert "unavailable" in first["message"] and "503 for too long" in first["message"]
    assert first["cursor"] == {"contacts": {"pos": 20}}
    second = engine.run_sync(flaky.id, "flaky", streams=["contacts"])
    assert second["status"] == "succeeded"
    assert Flaky.pulls[-1] == ("contacts", {"pos": 20})
    assert second["records_in"] == 30
    assert count(Profile) == 50
    assert db.session.scalar(select(func.count()).select_from(Identity).where(Identity.kind == "email")) == 50


def test_a_crash_between_checkpoints_keeps_only_what_was_checkpointed_as_done(flaky):
    Flaky.fail = {"at": 37, "error": RuntimeError("the process died")}
    engine.run_sync(flaky.id, "flaky", streams=["contacts"])
    state = db.session.scalar(select(StreamState.state).where(StreamState.stream == "contacts"))
    assert state == {"pos": 30}
    engine.run_sync(flaky.id, "flaky", streams=["contacts"])
    assert count(Profile) == 50


def test_bad_credentials_stop_the_run_with_a_clear_message_and_write_nothing(flaky):
    save_connection(flaky.id, "flaky", {"token": "expired"})
    summary = engine.run_sync(flaky.id, "flaky")
    assert summary["status"] == "failed"
    assert summary["message"].startswith("credentials refused: 401: token expired")
    assert count(Profile) == 0 and count(StreamState) == 0
    assert Flaky.pulls == []


def test_one_failing_stream_does_not_stop_the_others(flaky):
    Flaky.fail = {"products": True}
    summary = engine.run_sync(flaky.id, "flaky")
    assert summary["status"] == "partial"
    assert summary["streams"]["contacts"]["status"] == "succeeded"
    assert "400 bad request" in summary["streams"]["products"]["error"]


def test_a_second_run_of_the_same_connection_is_refused_while_one_is_alive(flaky):
    conn = db.session.scalar(select(Connection))
    run = engine.start_run(conn, "pull", "test")
    with pytest.raises(engine.AlreadyRunning):
        engine.run_sync(flaky.id, "flaky")
    from datetime import timedelta

    run.heartbeat_at -= timedelta(hours=1)  # its process died
    db.session.commit()
    assert engine.run_sync(flaky.id, "flaky")["status"] == "succeeded"
    db.session.refresh(run)
    assert run.status == "failed" and "interrupted" in run.message


def test_full_resync_reads_everything_again_without_duplicates(flaky):
    engine.run_sync(flaky.id, "flaky")
    again = engine.run_sync(flaky.id, "flaky", full=True)
    assert again["records_in"] == 52 and count(Profile) == 50


def test_secrets_are_encrypted_at_rest_and_never_shown(flaky, app):
    save_connection(flaky.id, "flaky", {"token": "good", "region": "eu"})
    conn = db.session.scalar(select(Connection))
    assert "good" not in conn.secrets and "token" not in (conn.settings or {})
    assert conn.settings == {"region": "eu"}
    assert public_settings(conn) == {"region": "eu", "token": "(set)"}
    save_connection(flaky.id, "flaky", {"region": "us"})  # a secret left out stays as it was
    assert engine.run_sync(flaky.id, "flaky")["status"] == "succeeded"


def test_secrets_unreadable_after_a_key_change_fail_the_run_clearly(flaky, app):
    app.config["ENCRYPTION_KEY"] = "a different key"
    summary = engine.run_sync(flaky.id, "flaky")
    assert summary["status"] == "failed" and "enter them again" in summary["message"]


def test_settings_are_checked_against_the_declaration(register, shop):
    from personalize.sync.connections import ConnectionSettingsError

    register(Flaky)
    with pytest.raises(ConnectionSettingsError, match="token: is required"):
        save_connection(shop.id, "flaky", {})
    with pytest.raises(ConnectionSettingsError, match="has no setting 'colour'"):
        save_connection(shop.id, "flaky", {"token": "x", "colour": "red"})
    with pytest.raises(ConnectionSettingsError, match="no connector 'nope'"):
        save_connection(shop.id, "nope", {})


def test_run_log_lists_runs_newest_first(flaky):
    engine.run_sync(flaky.id, "flaky")
    save_connection(flaky.id, "flaky", {"token": "bad"})
    engine.run_sync(flaky.id, "flaky")
    log = engine.run_log(flaky.id)
    assert [e["status"] for e in log] == ["failed", "succeeded"]
    assert log[0]["connection"] == "flaky" and count(SyncRun) == 2


def test_hook_sync_finished(flaky, app):
    from personalize import hookimpl

    seen = []

    class Listener:
        @hookimpl
        def sync_finished(self, site_id, connection, connector, summary):
            seen.append((site_id, connection, connector, summary["status"], summary["records_out"]))

    app.extensions["personalize.plugins"].pm.register(Listener())
    engine.run_sync(flaky.id, "flaky", streams=["contacts"])
    assert seen == [(flaky.id, "flaky", "flaky", "succeeded", 50)]


def test_the_conformance_check_catches_a_stream_that_loses_records_on_resume():
    from datetime import datetime

    from personalize.connectors import ConnectorContext
    from personalize.sync.http import HttpClient
    from personalize.sync.testing import check_resume

    class Leaky(Connector):
        name = "leaky"
        streams = (Stream("contacts", "contact"),)

        def pull(self, stream, state):
            start = (state or {}).get("pos", 0)
            for i in range(start, 6):
                yield PEOPLE[i]
                if i == 2:
                    yield Checkpoint({"pos": i + 2})  # one too far: record 3 is never read again
            yield Checkpoint({"pos": 6})

    def make():
        return Leaky(ConnectorContext(settings={}, http=HttpClient(), started_at=datetime(2026, 1, 1)))

    assert check_resume(make, "contacts") == ["contacts: resuming after 3 records misses ['c3']"]
    assert check_resume(lambda: Flaky(ConnectorContext(settings={}, http=HttpClient(), started_at=datetime(2026, 1, 1))), "contacts") == []


def test_an_unexpected_answer_to_the_check_fails_the_run_instead_of_leaving_it_running(register, shop):
    class Odd(Flaky):
        name = "odd"

        def check(self):
            raise StreamError("GET /me: 404 not found")

    register(Odd)
    save_connection(shop.id, "odd", {"token": "good"})
    summary = engine.run_sync(shop.id, "odd")
    assert summary["status"] == "failed" and summary["message"] == "the connection check failed: StreamError: GET /me: 404 not found"
    assert db.session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.status == "running")) == 0


def test_a_contact_whose_id_and_email_are_on_two_profiles_merges_them(flaky):
    from personalize.profiles.identity import lookup, profiles_for

    by_id = profiles_for(flaky.id, "flaky_id", ["c0"])["c0"]
    by_email = profiles_for(flaky.id, "email", ["person0@example.com"])["person0@example.com"]
    db.session.commit()
    assert by_id != by_email
    summary = engine.run_sync(flaky.id, "flaky", streams=["contacts"])
    assert summary["status"] == "succeeded"
    assert any("1 contact(s) whose email and flaky_id were on two profiles: merged" in e for e in summary["errors"])
    one = lookup(flaky.id, "flaky_id", ["c0"])["c0"]
    assert lookup(flaky.id, "email", ["person0@example.com"])["person0@example.com"] == one
    assert count(Profile) == 50
    assert attributes_of(one)["plan"]["value"] == "free"



def test_a_stream_may_report_deletions_in_order_with_its_records(register, shop):
    from personalize.catalog import get_product
    from personalize.records import DeletedRecord

    class Deleting(Connector):
        name = "deleting"
        kind = "crm"
        identity_kind = "deleting_id"
        default_mapping = {"plan": "plan"}
        settings = ()
        streams = (Stream("contacts", "contact"), Stream("products", "product"))
        rounds: list[dict[str, list[Any]]] = []

        def check(self):
            return CheckResult(True, "ok")

        def pull(self, stream, state):
            yield from Deleting.rounds[0][stream]
            yield Checkpoint({"n": len(Deleting.rounds)})
            if stream == "products":
                Deleting.rounds.pop(0)

    register(Deleting)
    save_connection(shop.id, "deleting", {})
    ann = ContactRecord(external_id="d1", email="ann@example.com", attributes={"plan": "gold"})
    bob = ContactRecord(external_id="d2", email="bob@example.com", attributes={"plan": "free"})
    first = {"contacts": [ann, bob], "products": [ProductRecord("p1", "Product one"), ProductRecord("p2", "Product two")]}
    # the next run: Ann deleted remotely, a deletion of nothing known, a product's record then its deletion, and a
    # deletion of another kind of record than the stream's
    second = {"contacts": [DeletedRecord("contact", "d1"), DeletedRecord("contact", "never-seen")],
              "products": [ProductRecord("p1", "Product one, renamed"), DeletedRecord("product", "p1"), DeletedRecord("order", "o1")]}
    Deleting.rounds = [first, second]
    assert engine.run_sync(shop.id, "deleting")["status"] == "succeeded"
    ann_pid = db.session.scalar(select(Identity.profile_id).where(Identity.kind == "deleting_id", Identity.value == "d1"))
    assert attributes_of(ann_pid)["plan"]["value"] == "gold"

    summary = engine.run_sync(shop.id, "deleting")
    assert summary["status"] == "succeeded", summary
    assert summary["streams"]["contacts"]["in"] == 2 and summary["streams"]["contacts"]["stored"] == 2
    assert summary["streams"]["products"]["in"] == 2 and summary["streams"]["products"]["skipped"] == 1, "an order deletion is not a product's"
    db.session.expire_all()
    assert db.session.scalar(select(Identity).where(Identity.kind == "deleting_id", Identity.value == "d1")) is None
    assert "plan" not in attributes_of(ann_pid), "what the connector said about Ann is gone"
    assert db.session.get(Profile, ann_pid) is not None, "Ann is still known by her email"
    bob_pid = db.session.scalar(select(Identity.profile_id).where(Identity.kind == "deleting_id", Identity.value == "d2"))
    assert attributes_of(bob_pid)["plan"]["value"] == "free", "Bob is untouched"
    assert get_product(shop.id, "p1") is None and get_product(shop.id, "p2") is not None
