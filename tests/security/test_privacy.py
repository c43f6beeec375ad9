"""Privacy: export returns everything stored about a person, erase leaves no trace of them.

One person is built with every kind of data personalize keeps (two devices, an identify,
events of every type, an order, connector attributes and engagement, scores, a segment,
contact log, a merge, run logs and a webhook payload naming them, a journey entry and its
steps, cached recommendation lists in a real Redis). After the erase, every text and JSON column of every table and
every Redis key of the test's database is searched for any of their ids; a second person
must come out of it exactly as they went in.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from personalize.app import create_app
from personalize.db import db
from personalize.records import ContactRecord, EngagementRecord
from personalize.testing import app_config, fresh_database

REDIS_URL = os.environ.get("PERSONALIZE_TEST_PRIVACY_REDIS_URL", "redis://127.0.0.1:6379/12")

PRODUCTS = ["run-shoe", "run-sock", "run-gel", "tea-pot", "tea-cup"]


def _redis_or_skip():
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            pass
    except OSError:
        reason = "Redis is not reachable at 127.0.0.1:6379"
        if os.environ.get("PERSONALIZE_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + "; PERSONALIZE_REQUIRE_SERVICES=1 makes this an error")
        pytest.skip(reason)
    import redis

    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture
def redis_client():
    client = _redis_or_skip()
    yield client
    client.close()


@pytest.fixture
def privacy_app(tmp_path, redis_client):
    """An app of its own with Redis on (so recommendation lists are cached) and a short list lifetime."""
    with fresh_database(tmp_path) as url:
        application = create_app(app_config(tmp_path, url, REDIS_URL=REDIS_URL, RECOMMENDATION_CACHE_SECONDS=300.0))
        with application.app_context():
            yield application
            db.session.remove()
            from personalize.cache import shared_cache

            shared_cache().close()
            db.engine.dispose()


@dataclass
class Person:
    """The ids of one person, and every string that would betray them if found after the erase."""

    tag: str
    ip: str
    email: str = ""
    customer_id: str = ""
    crm_id: str = ""
    visitors: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    order_id: str = ""
    rec_ids: list[str] = field(default_factory=list)
    user_agent: str = ""
    profile_ids: list[int] = field(default_factory=list)

    def needles(self) -> list[str]:
        return [self.email, self.customer_id, self.crm_id, self.order_id, self.user_agent, self.ip,
                *self.visitors, *self.event_ids, *self.rec_ids]


def _post_events(client, key: str, person: Person, events: list[dict], visitor: str) -> None:
    for ev in events:
        ev.setdefault("visitor", visitor)
        ev.setdefault("ts", 1_760_000_000_000 + len(person.event_ids) * 1000)
        person.event_ids.append(ev["id"])
    r = client.post("/api/v1/events", json={"key": key, "events": events},
                    headers={"User-Agent": person.user_agent}, environ_base={"REMOTE_ADDR": person.ip})
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["accepted"] == len(events)


def build_person(client, site, secret: str, tag: str, ip: str) -> Person:
    """Everything personalize can hold about one person, through the ways it arrives."""
    from personalize.models import utcnow
    from personalize.profiles.identity import EMAIL, lookup
    from personalize.profiles.trust import sign_identity, signing_secret
    from personalize.segments import policy
    from personalize.sync.connections import save_connection
    from personalize.sync.models import Connection, SyncRun, WebhookDelivery
    from personalize.sync.store import store_contacts, store_engagement

    p = Person(tag=tag, ip=ip, email=f"ann.{tag}@example.org", customer_id=f"cust-{tag}", crm_id=f"crm-{tag}",
               order_id=f"order-{tag}", user_agent=f"Mozilla/5.0 (Windows NT 10.0) ProbeBrowser/{tag}")
    phone, laptop = f"phone-{tag}", f"laptop-{tag}"
    p.visitors = [phone, laptop]
    p.rec_ids = [f"rec-{tag}-1"]
    # recommendation lists asked for on both devices: cached in Redis under the visitor ids
    for visitor in p.visitors:
        r = client.get(f"/api/v1/recommendations?key={site.public_key}&visitor={visitor}&slot=home&limit=3",
                       environ_base={"REMOTE_ADDR": ip})
        assert r.status_code == 200, r.get_json()
    # the anonymous phone: every behavioural event type
    _post_events(client, site.public_key, p, [
        {"id": f"ev-{tag}-page", "type": "page_viewed", "url": f"https://shop.example/?ref={tag}", "referrer": f"https://mail.example/{tag}"},
        {"id": f"ev-{tag}-imp", "type": "rec_impression", "rec_id": p.rec_ids[0], "slot": "home", "items": PRODUCTS[:3]},
        {"id": f"ev-{tag}-click", "type": "rec_clicked", "rec_id": p.rec_ids[0], "slot": "home", "product_id": "run-shoe", "position": 0},
        {"id": f"ev-{tag}-view", "type": "product_viewed", "product_id": "run-shoe", "rec_id": p.rec_ids[0], "slot": "home"},
        {"id": f"ev-{tag}-cart", "type": "product_added", "product_id": "run-shoe", "quantity": 1, "price": 120.0},
    ], phone)
    # the laptop: a signed identify (a merge of the phone's profile into the known person follows below)
    secret_for_signing = signing_secret(site.id)
    _post_events(client, site.public_key, p, [
        {"id": f"ev-{tag}-lview", "type": "product_viewed", "product_id": "run-sock"},
        {"id": f"ev-{tag}-id1", "type": "identify", "email": p.email, "customer_id": p.customer_id, "traits": {"first_name": f"Ann{tag}"},
         "signature": sign_identity(secret_for_signing, p.email, p.customer_id)},
        {"id": f"ev-{tag}-order", "type": "order_completed", "order_id": p.order_id, "email": p.email, "revenue": 132.0, "currency": "EUR",
         "rec_id": p.rec_ids[0], "items": [{"product_id": "run-shoe", "quantity": 1, "price": 120.0}, {"product_id": "run-sock", "price": 12.0}]},
    ], laptop)
    _post_events(client, site.public_key, p, [
        {"id": f"ev-{tag}-id2", "type": "identify", "email": p.email, "customer_id": p.customer_id,
         "signature": sign_identity(secret_for_signing, p.email, p.customer_id)},
    ], phone)
    pid = lookup(site.id, EMAIL, [p.email])[p.email]
    p.profile_ids.append(pid)
    # a connector: the CRM's contact (attributes and its own id), its engagement, a run log and a webhook naming them
    conn = db.session.scalar(select(Connection).where(Connection.site_id == site.id, Connection.name == "crm"))
    conn_id = (conn or save_connection(site.id, "files", {"folder": "crm"}, name="crm")).id
    now = utcnow()
    store_contacts(site.id, "crm", "crm_id", {"*": "*"}, [ContactRecord(external_id=p.crm_id, email=p.email,
                                                                      attributes={"tier": "gold", "city": f"Town-{tag}"}, updated_at=now)])
    store_engagement(site.id, "crm", "crm_id", [EngagementRecord(id=f"open-{tag}", type="email_opened", occurred_at=now,
                                                                 email=p.email, external_id=p.crm_id, properties={"campaign": f"spring-{tag}"})])
    db.session.add(SyncRun(site_id=site.id, connection_id=conn_id, kind="pull", status="partial", started_at=now, finished_at=now,
                           records_in=2, message=f"contact {p.email}: rejected by the mapping",
                           errors=[f"contact {p.crm_id}: city too long", "page 2: timed out"]))
    db.session.add(WebhookDelivery(connection_id=conn_id, delivery_id=f"wh-{tag}", topic="customers/update", headers={},
                                   body=f'{{"id": "{p.crm_id}", "email": "{p.email}", "first_name": "Ann{tag}"}}', processed_at=now))
    db.session.add(WebhookDelivery(connection_id=conn_id, delivery_id=f"wh-{tag}-late", topic="customers/update", headers={},
                                   body=f'{{"email": "{p.email.title()}", "note": "not processed yet"}}'))
    db.session.commit()
    # the contact policy counted a message
    policy.record(site.id, pid, "email", now - timedelta(hours=1))
    # a journey: an entry carrying what it was entered with, a step done and the next one waiting
    from personalize.journeys.batches import run_due
    from personalize.journeys.store import create_journey, get_journey, live_journeys, set_status
    from personalize.journeys.triggers import Candidate, enter

    if get_journey(site.id, "privacy") is None:
        set_status(create_journey(site.id, "privacy", "Privacy", {"trigger": {"type": "api"}, "control": 0, "steps": [
            {"id": "s1", "type": "set_attribute", "name": "journeyed", "value": True}, {"id": "s2", "type": "wait", "seconds": 86400}]}), "active")
    live = next(j for j in live_journeys(site.id).journeys if j.key == "privacy")
    enter(live, [Candidate(pid, f"api:{p.order_id}", "api", {"email": p.email, "order": p.order_id})])
    run_due(now=utcnow() + timedelta(seconds=1))
    return p


def _segment_and_scores(site_id: int) -> None:
    from personalize.segments.bulk import rebuild_segment
    from personalize.segments.scores import compute_scores
    from personalize.segments.store import create_segment

    compute_scores(site_id)
    create_segment(site_id, {"key": "buyers", "rule": {"field": "orders.count", "op": "gte", "value": 1}})
    rebuild_segment(site_id, "buyers")


def _text_of(value) -> str:
    import json

    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


SEARCHED: dict[str, int] = {}  # what the last searches looked at, for the figures printed at the end


def database_mentions(needles: list[str], profile_ids: tuple[int, ...] = ()) -> list[str]:
    """Every place in the database holding one of ``needles`` (or pointing at ``profile_ids``): ``table.column: needle``."""
    found = []
    SEARCHED.update(tables=0, rows=0, values=0)
    for table in db.metadata.sorted_tables:
        SEARCHED["tables"] += 1
        for row in db.session.execute(select(table)).mappings().all():
            SEARCHED["rows"] += 1
            SEARCHED["values"] += len(row)
            for column, value in row.items():
                if column.endswith("profile_id") and value in profile_ids:
                    found.append(f"{table.name}.{column}: profile {value}")
                text = _text_of(value) if not isinstance(value, int | float) else ""
                found += [f"{table.name}.{column}: {needle}" for needle in needles if needle and needle in text]
    return sorted(set(found))


def traces_in_database(person: Person) -> list[str]:
    """Every place in the database still holding one of the person's ids."""
    return database_mentions(person.needles(), tuple(person.profile_ids))


def traces_in_redis(client, person: Person) -> list[str]:
    needles = [n.encode() for n in person.needles() if n]
    found = []
    SEARCHED["redis_keys"] = 0
    for key in client.scan_iter(count=1000):
        SEARCHED["redis_keys"] += 1
        blob = key
        kind = client.type(key)
        if kind == b"string":
            blob += b" " + (client.get(key) or b"")
        elif kind == b"hash":
            blob += b" " + b" ".join(k + b"=" + v for k, v in client.hgetall(key).items())
        found += [f"{key!r}: {n.decode()}" for n in needles if n in blob]
    return found


def traces_in_files(folder, person: Person) -> list[str]:
    """Files under ``folder`` (the instance: model files, and the SQLite database with its journal) holding an id of the person."""
    from pathlib import Path

    needles = [n.encode() for n in person.needles() if n]
    found = []
    SEARCHED["files"] = 0
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            SEARCHED["files"] += 1
            blob = path.read_bytes()
            found += [f"{path.name}: {n.decode()}" for n in needles if n in blob]
    return found


def test_export_is_complete_and_erase_leaves_no_trace(privacy_app, redis_client):
    from personalize.catalog import upsert_products
    from personalize.records import ProductRecord
    from personalize.sites import create_site

    app = privacy_app
    client = app.test_client()
    site_row, secret = create_site("Privacy shop", ["https://shop.example"])
    upsert_products(site_row.id, [ProductRecord(pid, pid.replace("-", " ").title(), f"/p/{pid}", "", 10.0, "EUR", pid[:3]) for pid in PRODUCTS])
    auth = {"Authorization": f"Bearer {secret}"}

    from personalize.profiles import ingest_events

    background = []  # other shoppers: runners buy shoes with gels, tea lovers pots with cups
    for n in range(12):
        pair = ("run-shoe", "run-gel") if n % 2 else ("tea-pot", "tea-cup")
        background += [{"id": f"bg-{n}-{pid}", "type": "product_viewed", "visitor": f"bg-{n}", "product_id": pid, "ts": 1_750_000_000_000 + n}
                       for pid in pair]
        background.append({"id": f"bg-{n}-o", "type": "order_completed", "visitor": f"bg-{n}", "order_id": f"bg-o-{n}", "ts": 1_750_000_100_000 + n * 86_400_000,
                           "items": [{"product_id": pid, "quantity": 1, "price": 10.0 + 7 * n} for pid in pair]})
    ingest_events(site_row, background)
    ann = build_person(client, site_row, secret, secrets.token_hex(5), "203.0.113.77")
    bob = build_person(client, site_row, secret, secrets.token_hex(5), "198.51.100.9")
    _segment_and_scores(site_row.id)
    # a model that knows Ann, and lists asked for on her devices now that she has history: whatever
    # keeps lists or rankings (Redis, the process) holds them now
    from personalize.recommend.service import train_site

    train_site(site_row.id)

    def items(visitor: str) -> tuple[str, list[tuple[str, str]]]:
        r = client.get(f"/api/v1/recommendations?key={site_row.public_key}&visitor={visitor}&limit=5&slot=home")
        assert r.status_code == 200, r.get_json()
        return r.get_json()["strategy"], [(i["id"], i["reason"]) for i in r.get_json()["items"]]

    assert items(ann.visitors[0]) == items(ann.visitors[1]) != items(f"stranger-{ann.tag}"), "Ann's list is her own before the erase"
    assert ("run-shoe", "You bought this before") in items(ann.visitors[0])[1]
    # the rate-limit counters reach Redis from a background thread every 0.2 s; share them now so
    # the search below has the app's keys to look through whatever the timing
    from personalize.limits import limiter

    deadline = time.monotonic() + 8  # longer than the limiter rests after a Redis hiccup
    while not (limiter(app).flush() and redis_client.dbsize()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_client.dbsize() > 0, "the app writes to the Redis database the test searches"

    from personalize.profiles.merge import resolve_profile_id
    from personalize.profiles.models import ProfileMerge

    ann_id = ann.profile_ids[0]
    merged = list(db.session.scalars(select(ProfileMerge.merged_profile_id).where(ProfileMerge.kept_profile_id == ann_id)))
    assert merged, "the signed identify on the second device merged a profile into Ann's"
    ann.profile_ids += merged
    assert all(resolve_profile_id(site_row.id, m) == ann_id for m in merged)

    # -- export: every kind of data about Ann is in it -------------------------------------
    r = client.get(f"/api/v1/profiles/{ann_id}/export", headers=auth)
    assert r.status_code == 200
    data = r.get_json()
    assert data["profile"]["email"] == ann.email and data["profile"]["customer_id"] == ann.customer_id
    kinds = {(i["kind"], i["value"]) for i in data["identities"]}
    assert {("email", ann.email), ("customer_id", ann.customer_id), ("crm_id", ann.crm_id),
            ("visitor", ann.visitors[0]), ("visitor", ann.visitors[1])} <= kinds
    assert {e["event_id"] for e in data["events"]} == set(ann.event_ids)
    assert {e["type"] for e in data["events"]} == {"page_viewed", "rec_impression", "rec_clicked", "product_viewed",
                                                   "product_added", "identify", "order_completed"}
    assert {e["rec_id"] for e in data["events"] if e["rec_id"]} == set(ann.rec_ids)
    assert [o["external_id"] for o in data["orders"]] == [ann.order_id]
    assert {i["product_id"] for i in data["interactions"]} == {"run-shoe", "run-sock"}
    assert data["attributes"]["tier"]["value"] == "gold" and data["attributes"]["tier"]["source"] == "crm"
    assert data["attributes"]["first_name"]["value"] == f"Ann{ann.tag}"
    assert data["attributes"]["device"]["value"] == "desktop" and data["attributes"]["os"]["source"] == "events"
    assert data["scores"] is not None and data["scores"]["orders"] == 1
    assert len(data["segments"]) == 1 and [c["change"] for c in data["segment_changes"]] == ["entered"]
    assert len(data["contact_log"]) == 1 and data["contact_log"][0]["channel"] == "email"
    assert [e["external_id"] for e in data["engagements"]] == [f"open-{ann.tag}"]
    assert [m["merged_profile_id"] for m in data["merged_profiles"]] == merged
    assert [e["data"] for e in data["journey_enrollments"]] == [{"email": ann.email, "order": ann.order_id}]
    assert [(s["step_id"], s["state"]) for s in data["journey_steps"]] == [("s1", "done"), ("s2", "due")]
    for key in ("events", "orders", "identities", "engagements"):  # nothing of Bob's in Ann's export
        assert bob.email not in str(data[key]) and bob.visitors[0] not in str(data[key])
    assert bob.tag not in str(data)

    bob_id = bob.profile_ids[0]
    bob_before = client.get(f"/api/v1/profiles/{bob_id}/export", headers=auth).get_json()
    from personalize.segments.models import Segment

    members_before = db.session.scalar(select(Segment.member_count).where(Segment.site_id == site_row.id))

    # -- erase --------------------------------------------------------------------------------
    r = client.delete(f"/api/v1/profiles/{ann_id}", headers=auth)
    assert r.status_code == 200 and r.get_json()["erased"] == ann_id
    db.session.expire_all()
    assert traces_in_database(ann) == []
    assert traces_in_redis(redis_client, ann) == []
    assert traces_in_files(app.instance_path, ann) == [], "model files, and on SQLite the database file and its journal"
    looked_at = dict(SEARCHED)
    # nothing remembers her: her device ids now get what any newcomer gets
    assert items(ann.visitors[0]) == items(ann.visitors[1]) == items(f"newcomer-{ann.tag}")
    assert client.get(f"/api/v1/profiles/{ann_id}/export", headers=auth).status_code == 404
    for old in ann.profile_ids:
        assert client.get(f"/api/v1/profiles/{old}", headers=auth).status_code == 404

    # Bob is untouched, and the test did look for him where Ann was found
    assert traces_in_database(bob) != []
    from personalize.sync.models import SyncRun, WebhookDelivery

    deliveries = set(db.session.scalars(select(WebhookDelivery.delivery_id)))
    assert deliveries == {f"wh-{bob.tag}", f"wh-{bob.tag}-late"}, "Ann's payloads (one not processed, her email capitalised) are gone"
    logs = sorted(db.session.scalars(select(SyncRun.message)))
    assert logs == ["contact [erased]: rejected by the mapping", f"contact {bob.email}: rejected by the mapping"]
    assert ["contact [erased]: city too long", "page 2: timed out"] in [r.errors for r in db.session.scalars(select(SyncRun))]
    assert client.get(f"/api/v1/profiles/{bob_id}/export", headers=auth).get_json() == bob_before
    assert db.session.scalar(select(Segment.member_count).where(Segment.site_id == site_row.id)) == members_before - 1

    # the aggregates still work: popularity counts Bob's purchase, training and the dashboard run
    from personalize.insights.report import site_report

    summary = train_site(site_row.id)
    assert summary["n_users"] >= 1
    report = site_report(site_row.id, days=30)
    assert report is not None
    assert "run-shoe" in [pid for pid, _reason in items("someone-new")[1]]
    print(f"\nprivacy: {len(ann.needles())} ids of the erased person looked for in {looked_at['values']} values "
          f"({looked_at['rows']} rows, {looked_at['tables']} tables), {looked_at['redis_keys']} Redis keys and "
          f"{looked_at['files']} files: none found; {len(ann.event_ids)} events, 1 order, {len(ann.profile_ids)} profiles erased")


SUSPICIOUS_COLUMNS = {"visitor", "email", "ip", "ip_address", "user_agent", "customer_id"}
EXEMPT = {"profiles", "admin_users", "admin_sessions"}  # the profile itself; admin accounts and their sessions are staff, not shoppers


def undeclared_personal_tables(metadata) -> list[str]:
    """Tables pointing at profiles, or with a visitor, email or address column, that erase does not know."""
    from personalize.profiles.privacy import MENTIONING_TABLES, PERSONAL_TABLES

    missing = []
    for table in metadata.sorted_tables:
        if table.name in EXEMPT:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == "profiles" and PERSONAL_TABLES.get(table.name) != fk.parent.name:
                missing.append(f"{table.name}.{fk.parent.name}")
        named = SUSPICIOUS_COLUMNS & set(table.c.keys())
        if named and table.name not in PERSONAL_TABLES and table.name not in MENTIONING_TABLES:
            missing.append(f"{table.name}: {sorted(named)}")
    return missing


def test_every_table_about_a_person_is_declared():
    from personalize import schema  # noqa: F401
    from personalize.profiles.privacy import PERSONAL_TABLES

    assert undeclared_personal_tables(db.metadata) == [], "add them to PERSONAL_TABLES (or MENTIONING_TABLES) in personalize/profiles/privacy.py"
    for name, column in PERSONAL_TABLES.items():
        assert column in db.metadata.tables[name].c, f"{name}.{column} is declared but does not exist"


def test_a_new_table_about_people_is_caught():
    """The check above fails for the tables a later change might add and forget."""
    from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table

    later = MetaData()
    Table("profiles", later, Column("id", Integer, primary_key=True))
    Table("wishlists", later, Column("id", Integer, primary_key=True), Column("owner", ForeignKey("profiles.id")))
    Table("page_log", later, Column("id", Integer, primary_key=True), Column("visitor", String(128)), Column("ip", String(45)))
    Table("events", later, Column("id", Integer, primary_key=True), Column("buyer_id", ForeignKey("profiles.id")))
    Table("catalogue_notes", later, Column("id", Integer, primary_key=True), Column("text", String(100)))
    assert sorted(undeclared_personal_tables(later)) == ["events.buyer_id", "page_log: ['ip', 'visitor']", "wishlists.owner"]


# -- IP addresses ---------------------------------------------------------------------------

def _send_from(client, site, visitor: str, address: str, forwarded: str = "", user_agent: str = "") -> None:
    headers = {"User-Agent": user_agent or "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": f"{visitor}-{secrets.token_hex(4)}", "type": "product_viewed", "visitor": visitor, "product_id": "run-shoe"}]},
        headers=headers, environ_base={"REMOTE_ADDR": address})
    assert r.status_code == 202, r.get_json()


def _ip_of(site_id: int, visitor: str):
    from personalize.profiles import attributes_of, profile_for_visitor

    attrs = attributes_of(profile_for_visitor(site_id, visitor))
    return attrs.get("ip", {}).get("value"), attrs


def test_no_client_address_or_user_agent_is_stored_by_default(app, client, ctx, site):
    import base64
    import hashlib
    import hmac
    import json

    from personalize import jobs
    from personalize.sync.connections import save_connection

    assert app.config["STORE_IP_ADDRESSES"] is False
    agent = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0 Probe/7e1f"
    _send_from(client, site, "quiet-visitor", "203.0.113.77", forwarded="198.51.100.23", user_agent=agent)
    ip, attrs = _ip_of(site.id, "quiet-visitor")
    assert ip is None and attrs["os"]["value"] == "linux", "device facts are derived, the address is not kept"
    # a webhook through a proxy: the forwarding headers are not kept with the payload
    save_connection(site.id, "shopify", {"shop": "probe", "access_token": "shpat_probe", "webhook_secret": "whsec-probe",
                                         "api_url": "http://127.0.0.1:9"})
    body = json.dumps({"id": 1, "email": "probe@example.com", "line_items": []}).encode()
    signature = base64.b64encode(hmac.new(b"whsec-probe", body, hashlib.sha256).digest()).decode()
    r = client.post(f"/api/v1/webhooks/{site.public_key}/shopify", data=body, headers={
        "X-Shopify-Topic": "customers/update", "X-Shopify-Webhook-Id": "probe-1", "X-Shopify-Hmac-Sha256": signature,
        "Content-Type": "application/json", "X-Forwarded-For": "192.0.2.44", "X-Real-IP": "192.0.2.44"})
    assert r.status_code == 200, r.get_json()
    jobs.runner(app).wait(10)
    db.session.expire_all()
    from personalize.sync.models import WebhookDelivery

    kept = db.session.scalar(select(WebhookDelivery.headers).where(WebhookDelivery.delivery_id == "probe-1"))
    assert kept["X-Shopify-Topic"] == "customers/update", "the headers a connector reads are kept"
    assert database_mentions(["203.0.113", "198.51.100.23", "192.0.2.44", "Probe/7e1f"]) == []


def test_addresses_are_stored_as_documented_when_the_admin_opts_in(app, client, ctx, site):
    app.config["STORE_IP_ADDRESSES"] = True
    _send_from(client, site, "v4-visitor", "203.0.113.77")
    _send_from(client, site, "v6-visitor", "2001:db8:1234:5678::9")
    assert _ip_of(site.id, "v4-visitor")[0] == "203.0.113.0"
    assert _ip_of(site.id, "v6-visitor")[0] == "2001:db8:1234::"
    app.config["IP_ADDRESS_TRUNCATE"] = False
    _send_from(client, site, "full-visitor", "203.0.113.77")
    ip, attrs = _ip_of(site.id, "full-visitor")
    assert ip == "203.0.113.77" and attrs["ip"]["source"] == "events"
    # a new address replaces the old one (one attribute, newest wins)
    _send_from(client, site, "full-visitor", "198.51.100.9")
    assert _ip_of(site.id, "full-visitor")[0] == "198.51.100.9"
    # and it is exported and erased with the rest of the person
    from personalize.profiles import erase_profile, export_profile, profile_for_visitor

    pid = profile_for_visitor(site.id, "full-visitor")
    assert export_profile(site.id, pid)["attributes"]["ip"]["value"] == "198.51.100.9"
    erase_profile(site.id, pid)
    assert database_mentions(["198.51.100.9"]) == []


def test_stored_address_forms():
    from personalize.profiles.privacy import stored_address

    assert stored_address("10.1.2.3") == "10.1.2.0"
    assert stored_address("::ffff:10.1.2.3") == "10.1.2.0", "an IPv4 address seen through IPv6 is truncated as IPv4"
    assert stored_address("2001:db8:aaaa:bbbb::1", truncate=False) == "2001:db8:aaaa:bbbb::1"
    assert stored_address("unknown") is None and stored_address(None) is None


def test_erase_with_a_long_reader_open_still_erases_and_intake_goes_on(app, client, ctx, site, caplog):
    """A reader on an older snapshot (a training, an export) cannot hold the erase or event intake;
    on SQLite the log is emptied by the next erase's checkpoint once the reader is gone."""
    from personalize.profiles import erase_profile, profile_for_visitor

    tag = secrets.token_hex(5)
    first, second = Person(tag=tag, ip="", email=f"first.{tag}@example.org"), Person(tag=tag + "b", ip="")
    first.visitors, second.visitors = [f"first-{tag}"], [f"second-{tag}"]
    _post_events(client, site.public_key, first, [{"id": f"first-{tag}-id", "type": "identify", "email": first.email}], first.visitors[0])
    _post_events(client, site.public_key, second, [{"id": f"second-{tag}-pv", "type": "page_viewed"}], second.visitors[0])
    for person in (first, second):
        person.profile_ids.append(profile_for_visitor(site.id, person.visitors[0]))
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite"):
        import sqlite3

        reader = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()  # holds its snapshot
    else:
        reader = db.engine.raw_connection()
        reader.cursor().execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM events")
    try:
        with caplog.at_level("INFO", logger="personalize.profiles.privacy"):
            assert erase_profile(site.id, first.profile_ids[0]) == {"email": [first.email], "visitor": first.visitors}
        if url.startswith("sqlite"):
            assert "log is in use" in caplog.text, "the checkpoint gave way to the reader instead of waiting for it"
        _post_events(client, site.public_key, Person(tag="x", ip=""), [{"id": f"after-{tag}", "type": "page_viewed"}], f"later-{tag}")
        assert database_mentions(first.needles(), tuple(first.profile_ids)) == []
    finally:
        reader.rollback() if not url.startswith("sqlite") else reader.execute("ROLLBACK")
        reader.close()
    erase_profile(site.id, second.profile_ids[0])  # its checkpoint finds no reader in the way
    assert traces_in_files(app.instance_path, first) == [], "the instance folder holds the SQLite database and its log"
