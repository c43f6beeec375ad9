"""What one client sends never fails another client, and never turns into a 500 or invalid JSON.

Each test here failed before its fix: a lone surrogate (``"\\ud800"``) in an event
raised at insert and took the other batches of its group commit down with it; ``NaN``
and ``Infinity`` were accepted and later written out as invalid JSON; a plugin whose
``event_received`` raised turned a stored batch into a 500; the documented segment
``description`` was a 500.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import func, select, text, update

from personalize import hookimpl
from personalize.db import db
from personalize.models import Event, Order, Product
from personalize.records import ContactRecord, OrderLine, OrderRecord, ProductRecord

SURROGATE = "\\ud800"  # as JSON spells it: the parsed string holds a lone surrogate


def post_raw(client, body: str, **kwargs):
    return client.post("/api/v1/events", data=body, content_type="application/json", **kwargs)


def stored_event_ids(app, prefix: str) -> set[str]:
    with app.app_context():
        db.session.remove()
        return set(db.session.scalars(select(Event.event_id).where(Event.event_id.like(f"{prefix}%"))))


# Every place of an event a string can go: the surrogate there is refused by that path, and only that event.
EVENT_PLACES = [
    ('{"id": "s-1", "type": "product_viewed", "visitor": "v1", "product_id": "X"}', "events[0].product_id"),
    ('{"id": "s-1", "type": "page_viewed", "visitor": "v1", "url": "https://shop.example/X"}', "events[0].url"),
    ('{"id": "s-1", "type": "page_viewed", "visitor": "v1", "title": "X"}', "events[0].title"),
    ('{"id": "s-1", "type": "page_viewed", "visitor": "v1", "properties": {"colour": "X"}}', "events[0].properties.colour"),
    ('{"id": "s-1", "type": "page_viewed", "visitor": "v1", "properties": {"X": 1}}', "events[0].properties"),
    ('{"id": "s-1", "type": "identify", "visitor": "v1", "email": "a@example.com", "traits": {"plan": "X"}}', "events[0].traits.plan"),
    ('{"id": "s-1", "type": "rec_impression", "visitor": "v1", "rec_id": "r1", "items": ["X"]}', "events[0].items[0]"),
    ('{"id": "s-1", "type": "order_completed", "visitor": "v1", "items": [{"product_id": "X", "price": 1}]}', "events[0].items[0].product_id"),
    ('{"id": "s-1", "type": "order_completed", "visitor": "v1", "currency": "X", "items": [{"product_id": "p", "price": 1}]}', "events[0].currency"),
    ('{"id": "s-1", "type": "rec_clicked", "visitor": "v1", "rec_id": "r1", "product_id": "p", "strategy": "X"}', "events[0].strategy"),
]


@pytest.mark.parametrize(("event", "field"), EVENT_PLACES, ids=[f for _e, f in EVENT_PLACES])
def test_a_lone_surrogate_anywhere_in_an_event_is_refused_by_name_and_the_good_event_beside_it_kept(app, client, site, event, field):
    bad = event.replace("X", SURROGATE)
    good = '{"id": "s-2", "type": "page_viewed", "visitor": "v2"}'
    r = post_raw(client, f'{{"key": "{site.public_key}", "events": [{bad}, {good}]}}')
    assert r.status_code == 202, r.data
    assert r.json["accepted"] == 1
    assert r.json["rejected"][0]["field"] == field
    assert "surrogate" in r.json["rejected"][0]["message"]
    assert stored_event_ids(app, "s-") == {"s-2"}


def test_a_lone_surrogate_in_the_key_is_a_400(client, site):
    r = post_raw(client, f'{{"key": "{site.public_key}{SURROGATE}", "events": [{{"id": "k-1", "type": "page_viewed", "visitor": "v"}}]}}')
    assert r.status_code == 400 and r.json["error"]["field"] == "key"


@pytest.mark.parametrize(("path", "method", "body", "field"), [
    ("/api/v1/products", "post", '{"products": [{"id": "p1", "title": "T X"}]}', "products[0].title"),
    ("/api/v1/segments", "post", '{"key": "k", "name": "N X", "rule": {"field": "orders.count", "op": "gte", "value": 1}}', "name"),
    ("/api/v1/segments/preview", "post", '{"rule": {"field": "attributes.plan", "op": "eq", "value": "X"}}', "rule.value"),
    ("/api/v1/profiles/tokens", "post", '{"email": "a@example.com", "customer_id": "cX"}', "customer_id"),
])
def test_secret_key_bodies_refuse_a_lone_surrogate_by_its_path(client, site, path, method, body, field):
    r = getattr(client, method)(path, data=body.replace("X", SURROGATE), content_type="application/json",
                                headers={"Authorization": f"Bearer {site.secret_key}"})
    assert r.status_code == 400, r.data
    assert r.json["error"]["field"] == field


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_numbers_json_cannot_spell_are_refused_everywhere(client, site, number):
    secret = {"Authorization": f"Bearer {site.secret_key}"}
    r = post_raw(client, f'{{"key": "{site.public_key}", "events": [{{"id": "n-1", "type": "page_viewed", "visitor": "v", "properties": {{"x": {number}}}}}]}}')
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"
    r = client.post("/api/v1/products", data=f'{{"products": [{{"id": "p1", "title": "T", "price": {number}}}]}}',
                    content_type="application/json", headers=secret)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"
    r = client.post("/api/v1/segments", data=f'{{"key": "k", "rule": {{"field": "orders.total", "op": "gte", "value": {number}}}}}',
                    content_type="application/json", headers=secret)
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"


def test_an_integer_longer_than_python_parses_is_a_400(client, site):
    r = post_raw(client, f'{{"key": "{site.public_key}", "events": [{{"id": "big", "type": "page_viewed", "visitor": "v", "ts": {"9" * 5000}}}]}}')
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"


def test_values_stored_before_the_door_was_shut_still_come_out_as_valid_json(app, client, site):
    """A NaN price or order total (stored by an older version, or by a plugin) is written as null."""
    secret = {"Authorization": f"Bearer {site.secret_key}"}
    with app.app_context():
        db.session.execute(update(Product).where(Product.site_id == site.id, Product.external_id == "run-shoe").values(price=float("nan")))
        db.session.execute(update(Order).where(Order.site_id == site.id).values(total=float("inf")))
        db.session.commit()
        profile_id = db.session.scalar(select(Order.profile_id).where(Order.site_id == site.id).limit(1))
    for path in ("/api/v1/products?limit=100", "/api/v1/products/run-shoe", f"/api/v1/profiles/{profile_id}/export", f"/api/v1/profiles/{profile_id}"):
        r = client.get(path, headers=secret)
        assert r.status_code == 200, (path, r.status_code)
        json.loads(r.get_data(as_text=True), parse_constant=lambda name, where=path: pytest.fail(f"{where} wrote {name}"))
    assert client.get("/api/v1/products/run-shoe", headers=secret).json["price"] is None


def test_the_documented_segment_description_is_accepted(client, site):
    r = client.post("/api/v1/segments", json={"key": "buyers", "name": "Buyers", "description": "Everyone who ordered",
                                              "rule": {"field": "orders.count", "op": "gte", "value": 1}},
                    headers={"Authorization": f"Bearer {site.secret_key}"})
    assert r.status_code == 201, r.data
    assert r.json["description"] == "Everyone who ordered"


# --- one request's failure stays its own ---


@pytest.fixture
def poisoned_events(app):
    """The database refuses an event whose product id is ``poison`` (a trigger): a value our validation
    let through but the database will not take, the way ``"\\ud800"`` was."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.product_id = 'poison' THEN RAISE EXCEPTION 'poisoned value' USING ERRCODE = '22023'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            ))
            db.session.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison()"))
        else:
            db.session.execute(text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.product_id = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned value'); END"
            ))
        db.session.commit()
    yield


def send(url: str, key: str, events: list[dict], answers: dict, name: str) -> None:
    request = urllib.request.Request(f"{url}/api/v1/events", data=json.dumps({"key": key, "events": events}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answers[name] = (response.status, json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        answers[name] = (exc.code, json.loads(exc.read()))


def test_a_batch_the_database_refuses_fails_alone_and_the_batches_sharing_its_transaction_are_stored(app, site, live_server, poisoned_events):
    answers: dict[str, tuple[int, dict]] = {}
    send(live_server.url, site.public_key, [{"id": "warm", "type": "page_viewed", "visitor": "w"}], answers, "warm")
    batcher = app.extensions["personalize.event_batcher"]
    batches = {f"good-{n}": [{"id": f"iso-{n}-{i}", "type": "product_viewed", "visitor": f"iso-{n}", "product_id": "run-sock"} for i in range(3)]
               for n in range(5)}
    batches["bad"] = [{"id": "iso-bad-1", "type": "product_viewed", "visitor": "iso-bad", "product_id": "poison"},
                      {"id": "iso-bad-2", "type": "page_viewed", "visitor": "iso-bad"}]
    with batcher._writer[site.id]:  # a write in progress: the six requests queue up and form one group
        threads = [threading.Thread(target=send, args=(live_server.url, site.public_key, events, answers, name)) for name, events in batches.items()]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(batcher._queued.get(site.id, [])) < len(batches):
            time.sleep(0.01)
        assert len(batcher._queued.get(site.id, [])) == len(batches)
    for t in threads:
        t.join()
    for n in range(5):
        assert answers[f"good-{n}"] == (202, {"accepted": 3, "duplicates": 0})
    status, body = answers["bad"]
    assert status == 400 and body["error"]["field"] == "events"
    stored = stored_event_ids(app, "iso-")
    assert stored == {f"iso-{n}-{i}" for n in range(5) for i in range(3)}  # nothing of the refused batch, all of the rest


class FailingListener:
    @hookimpl
    def event_received(self, site_id, event):
        raise RuntimeError("this plugin is broken")


class RecordingListener:
    def __init__(self):
        self.seen: list[str] = []

    @hookimpl
    def event_received(self, site_id, event):
        self.seen.append(event.event_id)


def test_a_plugin_that_raises_on_event_received_costs_neither_the_answer_nor_the_other_plugins_nor_the_segments(app, client, site):
    from personalize.profiles import profile_for_visitor
    from personalize.segments.store import create_segment, segments_of_profile

    recorder = RecordingListener()
    pm = app.extensions["personalize.plugins"].pm
    pm.register(recorder, name="recorder")
    pm.register(FailingListener(), name="broken-listener")  # called first (last registered)
    with app.app_context():
        create_segment(site.id, {"key": "sock-lookers", "rule": {"behaviour": {"event": "product_viewed", "min": 1}}})
    r = client.post("/api/v1/events", json={"key": site.public_key, "events": [
        {"id": "hk-1", "type": "product_viewed", "visitor": "v-hook", "product_id": "run-sock"}]})
    assert r.status_code == 202 and r.json["accepted"] == 1
    assert recorder.seen == ["hk-1"]
    with app.app_context():
        assert [s["key"] for s in segments_of_profile(profile_for_visitor(site.id, "v-hook"))] == ["sock-lookers"]
        failures = app.extensions["personalize.plugins"].failures
    assert failures == {"broken-listener": 1}
    # the owner sees which plugin failed, on the Plugins page
    from personalize.admin.users import create_admin_user

    with app.app_context():
        create_admin_user("owner@shop.example", "correct horse battery", "owner")
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/admin/login", data={"email": "owner@shop.example", "password": "correct horse battery", "csrf_token": token})
    page = client.get("/admin/plugins").get_data(as_text=True)
    assert "broken-listener" in page and "this plugin is broken" in page


# --- records from connectors and files ---


def test_connector_records_holding_unstorable_values_are_skipped_by_name_and_the_rest_stored(ctx, site):
    from personalize.sync import store

    products = [
        ProductRecord("ok-1", "Fine product", price=10.0),
        ProductRecord("nan-1", "Priced NaN", price=float("nan")),
        ProductRecord("sur-1", "Title \ud800"),
        ProductRecord("att-1", "Attr", attributes={"weight": float("inf")}),
    ]
    result = store.store_products(site.id, products)
    db.session.commit()
    assert result.stored == 1
    assert len(result.skipped) == 3 and any("price" in s for s in result.skipped) and any("attributes.weight" in s for s in result.skipped)
    assert db.session.scalar(select(func.count()).select_from(Product).where(Product.external_id.in_(["nan-1", "sur-1", "att-1"]))) == 0
    contacts = store.store_contacts(site.id, "test", "", {"*": "*"}, [
        ContactRecord(external_id="c1", email="ok@example.com", attributes={"plan": "gold"}),
        ContactRecord(external_id="c2", email="bad@example.com", attributes={"score": float("nan")}),
    ])
    assert contacts.stored == 1 and "attributes.score" in contacts.skipped[0]
    orders = store.store_orders(site.id, [OrderRecord(id="o-nan", occurred_at=None, lines=(OrderLine("p", quantity=math.nan),), customer_id="c1")])
    assert orders.stored == 0 and "lines[0].quantity" in orders.skipped[0]


@pytest.mark.parametrize(("cell", "name"), [("nan", "price"), ("inf", "price"), ("-Infinity", "price")])
def test_import_products_names_the_line_of_a_number_that_is_not_one(runner, tmp_path, cell, name):
    from personalize.cli import cli

    path = tmp_path / "products.csv"
    path.write_text(f"id,title,price\np1,Mug,3.5\np2,Pot,{cell}\n", encoding="utf-8")
    assert runner.invoke(cli, ["create-site", "Shop"]).exit_code == 0
    result = runner.invoke(cli, ["import-products", str(path), "--site", "Shop"])
    assert result.exit_code != 0
    assert "line 3" in result.output and name in result.output
