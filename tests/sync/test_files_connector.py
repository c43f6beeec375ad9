"""The CSV / JSON files connector end to end: contacts, products, orders, engagement, growth, push."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Order, Product, Profile
from personalize.profiles.attributes import attributes_of
from personalize.profiles.identity import lookup
from personalize.records import SegmentChange
from personalize.sync import engine
from personalize.sync.connections import save_connection, site_files_root
from personalize.sync.models import Engagement
from personalize.sync.push import push_changes


def write_csv(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def folder(shop):
    """``exports`` in the site's files folder on the server, with a file per stream, connected."""
    data = site_files_root(shop.id) / "exports"
    data.mkdir(parents=True)
    write_csv(data / "contacts.csv", [
        {"id": "42", "email": "Ann@Example.com", "first_name": "Ann", "plan": "gold", "updated_at": "2026-11-01T10:00:00Z"},
        {"id": "43", "email": "bob@example.com", "first_name": "Bob", "plan": "", "updated_at": "2026-11-01T11:00:00Z"},
        {"id": "", "email": "", "first_name": "Nobody", "plan": "", "updated_at": ""},
    ])
    (data / "products.jsonl").write_text(
        json.dumps({"id": "mug", "title": "Blue mug", "price": 12.5, "currency": "EUR", "in_stock": True}) + "\n"
        + "not json\n"
        + json.dumps({"id": "pot", "title": "Tea pot", "price": "oops"}) + "\n"
    )
    write_csv(data / "orders.csv", [
        {"order_id": "A1", "occurred_at": "2026-11-02T09:00:00Z", "customer_id": "42", "email": "", "product_id": "mug", "quantity": "2", "price": "12.5", "currency": "EUR", "title": ""},
        {"order_id": "A1", "occurred_at": "2026-11-02T09:00:00Z", "customer_id": "42", "email": "", "product_id": "pot", "quantity": "1", "price": "30", "currency": "EUR", "title": "Tea pot"},
        {"order_id": "A2", "occurred_at": "", "customer_id": "43", "email": "", "product_id": "mug", "quantity": "1", "price": "12.5", "currency": "EUR", "title": ""},
    ])
    (data / "engagement.json").write_text(json.dumps([
        {"id": "e1", "type": "email_open", "occurred_at": "2026-11-03T08:00:00Z", "email": "ann@example.com", "campaign": "November"},
        {"id": "e2", "type": "email_click", "occurred_at": "2026-11-03T08:01:00Z", "customer_id": "43"},
    ]))
    save_connection(shop.id, "files", {"folder": "exports"})
    return data


def test_files_sync_everything_into_profiles(folder, shop):
    summary = engine.run_sync(shop.id, "files")
    assert summary["status"] == "succeeded", summary
    streams = summary["streams"]
    assert (streams["contacts"]["stored"], streams["contacts"]["skipped"]) == (2, 1)
    assert (streams["products"]["stored"], streams["products"]["skipped"]) == (1, 2)
    assert (streams["orders"]["stored"], streams["orders"]["skipped"]) == (1, 1)
    assert streams["engagement"]["stored"] == 2
    ann = lookup(shop.id, "customer_id", ["42"])["42"]
    assert lookup(shop.id, "email", ["ann@example.com"])["ann@example.com"] == ann, "emails are matched without regard to case"
    attrs = attributes_of(ann)
    assert attrs["first_name"]["value"] == "Ann" and attrs["plan"]["value"] == "gold" and attrs["plan"]["source"] == "files"
    assert "email" not in attrs and "id" not in attrs
    order = db.session.scalar(select(Order).where(Order.external_id == "A1"))
    assert order.profile_id == ann and order.total == 55.0
    assert {p.external_id for p in db.session.scalars(select(Product))} == {"mug", "pot"}
    kinds = dict(db.session.execute(select(Engagement.external_id, Engagement.profile_id)).all())
    assert kinds["e1"] == ann and kinds["e2"] == lookup(shop.id, "customer_id", ["43"])["43"]


def test_a_second_run_reads_only_appended_rows_and_never_doubles(folder, shop):
    engine.run_sync(shop.id, "files")
    again = engine.run_sync(shop.id, "files")
    assert again["records_in"] == 0
    with (folder / "contacts.csv").open("a", newline="") as fh:
        csv.writer(fh).writerow(["44", "cy@example.com", "Cy", "", ""])
    third = engine.run_sync(shop.id, "files")
    assert third["streams"]["contacts"]["in"] == 1
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 3
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    assert db.session.scalar(select(func.count()).select_from(Engagement)) == 2


def test_a_rewritten_file_is_read_again_from_the_top(folder, shop):
    engine.run_sync(shop.id, "files", streams=["contacts"])
    write_csv(folder / "contacts.csv", [{"id": "42", "email": "ann@example.com", "first_name": "Annie", "plan": "gold", "updated_at": "2026-11-05T10:00:00Z"}])
    summary = engine.run_sync(shop.id, "files", streams=["contacts"])
    assert summary["streams"]["contacts"]["in"] == 1
    ann = lookup(shop.id, "customer_id", ["42"])["42"]
    assert attributes_of(ann)["first_name"]["value"] == "Annie"


def test_a_missing_folder_is_a_settings_problem(folder, shop):
    save_connection(shop.id, "files", {"folder": "exports/nope"})
    summary = engine.run_sync(shop.id, "files")
    assert summary["status"] == "failed" and summary["message"].startswith("settings problem:")


def test_push_segments_to_a_members_file_idempotently(folder, shop):
    engine.run_sync(shop.id, "files", streams=["contacts"])
    ann = lookup(shop.id, "customer_id", ["42"])["42"]
    bob = lookup(shop.id, "customer_id", ["43"])["43"]
    changes = [SegmentChange("vip", ann, True), SegmentChange("vip", bob, True)]
    first = push_changes(shop.id, "files", "file", changes)
    assert first["status"] == "succeeded" and [r.status for r in first["results"]] == ["ok", "ok"]
    push_changes(shop.id, "files", "file", changes)
    push_changes(shop.id, "files", "file", [SegmentChange("vip", bob, False)])
    rows = list(csv.DictReader((folder / "segment_members.csv").open()))
    assert rows == [{"segment": "vip", "profile_id": str(ann), "email": "ann@example.com", "customer_id": "42"}]
    assert engine.run_log(shop.id, "files")[0]["kind"] == "push"


def test_resume_states_conform(folder, monkeypatch):
    import personalize_files
    from personalize_files import FilesConnector

    from personalize.connectors import ConnectorContext
    from personalize.sync.http import HttpClient
    from personalize.sync.testing import check_resume

    monkeypatch.setattr(personalize_files, "CHECKPOINT_EVERY", 1)

    def make():
        return FilesConnector(ConnectorContext(settings={"folder": "exports"}, http=HttpClient(), started_at=datetime(2026, 11, 22),
                                               files_root=folder.parent))

    for stream in ("contacts", "products", "orders", "engagement"):
        assert check_resume(make, stream) == []
