"""POST /api/v1/events: validated, idempotent, stored before it is acknowledged."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Event, Interaction, Order, Profile


def post(client, key, events, content_type="application/json", **headers):
    return client.post("/api/v1/events", data=json.dumps({"key": key, "events": events}), content_type=content_type, headers=headers)


def count(model, **where):
    q = select(func.count()).select_from(model)
    for k, v in where.items():
        q = q.where(getattr(model, k) == v)
    return db.session.scalar(q)


def test_batch_is_stored_and_acknowledged(client, site):
    before = count(Event)
    r = post(client, site.public_key, [
        {"id": "a1", "type": "page_viewed", "visitor": "v1", "url": "https://shop.example/"},
        {"id": "a2", "type": "product_viewed", "visitor": "v1", "product_id": "run-shoe"},
    ])
    assert r.status_code == 202
    assert r.json == {"accepted": 2, "duplicates": 0}
    assert count(Event) == before + 2
    stored = db.session.scalar(select(Event).where(Event.event_id == "a2"))
    assert stored.product_id == "run-shoe" and stored.type == "product_viewed"


def test_sendbeacon_text_plain_body_is_accepted(client, site):
    r = post(client, site.public_key, [{"id": "b1", "type": "page_viewed", "visitor": "v2"}], content_type="text/plain;charset=UTF-8")
    assert r.status_code == 202
    assert count(Event, event_id="b1") == 1


def test_same_event_id_is_counted_once(client, site):
    events = [{"id": "dup-1", "type": "product_added", "visitor": "v3", "product_id": "run-gel", "quantity": 2}]
    assert post(client, site.public_key, events).json == {"accepted": 1, "duplicates": 0}
    assert post(client, site.public_key, events).json == {"accepted": 0, "duplicates": 1}
    assert count(Event, event_id="dup-1") == 1
    assert count(Interaction, product_id="run-gel", kind=2) == 1


def test_order_becomes_order_and_purchases(client, site):
    r = post(client, site.public_key, [{
        "id": "o1", "type": "order_completed", "visitor": "v4", "order_id": "ORD-1", "currency": "EUR",
        "items": [{"product_id": "tea-pot", "quantity": 1, "price": 45}, {"product_id": "tea-cup", "quantity": 2, "price": 9}],
    }])
    assert r.status_code == 202
    order = db.session.scalar(select(Order).where(Order.external_id == "ORD-1"))
    assert order.total == pytest.approx(63.0)
    assert count(Interaction, order_id=order.id) == 2
    # the same order arriving again under another event id is not counted twice
    post(client, site.public_key, [{"id": "o1-again", "type": "order_completed", "visitor": "v4", "order_id": "ORD-1", "items": [{"product_id": "tea-pot"}]}])
    assert count(Interaction, order_id=order.id) == 2


def test_identify_attaches_email_without_taking_another_profile(client, site):
    post(client, site.public_key, [{"id": "i1", "type": "identify", "visitor": "v5", "email": "Ann@Example.com"}])
    post(client, site.public_key, [{"id": "i2", "type": "identify", "visitor": "v6", "email": "ann@example.com"}])
    owners = db.session.scalars(select(Profile).where(Profile.email == "ann@example.com")).all()
    assert len(owners) == 1


@pytest.mark.parametrize(
    "event, field",
    [
        ({"type": "page_viewed", "visitor": "v"}, "events[0].id"),
        ({"id": "x", "type": "page_viewd", "visitor": "v"}, "events[0].type"),
        ({"id": "x", "type": "product_viewed", "visitor": "v"}, "events[0].product_id"),
        ({"id": "x", "type": "rec_clicked", "visitor": "v", "product_id": "p"}, "events[0].rec_id"),
        ({"id": "x", "type": "order_completed", "visitor": "v"}, "events[0].items"),
        ({"id": "x", "type": "order_completed", "visitor": "v", "items": [{"quantity": 1}]}, "events[0].items[0].product_id"),
        ({"id": "x", "type": "product_added", "visitor": "v", "product_id": "p", "quantity": -1}, "events[0].quantity"),
        ({"id": "x", "type": "identify", "visitor": "v", "email": "not-an-email"}, "events[0].email"),
        ({"id": "x", "type": "page_viewed", "visitor": "v", "colour": "red"}, "events[0].colour"),
        ({"id": "x y", "type": "page_viewed", "visitor": "v"}, "events[0].id"),
        ({"id": "x", "type": "page_viewed", "visitor": "v", "ts": "yesterday"}, "events[0].ts"),
    ],
)
def test_invalid_event_is_refused_naming_the_field(client, site, event, field):
    before = count(Event)
    r = post(client, site.public_key, [event])
    assert r.status_code == 400
    assert r.json["error"]["field"] == field
    assert count(Event) == before


@pytest.mark.parametrize(
    "event, field",
    [
        ({"id": "x", "type": "page_viewd", "visitor": "v"}, "events[1].type"),
        ({"id": "x", "type": "identify", "visitor": "v", "email": "nope"}, "events[1].email"),
    ],
)
def test_one_bad_event_does_not_cost_the_good_ones(client, site, event, field):
    """A beacon never reads its answer, so the valid events of a batch are kept and the bad ones reported."""
    r = post(client, site.public_key, [{"id": "ok-1", "type": "page_viewed", "visitor": "v"}, event, {"id": "ok-2", "type": "page_viewed", "visitor": "v"}])
    assert r.status_code == 202
    assert r.json["accepted"] == 2
    assert [(x["index"], x["field"]) for x in r.json["rejected"]] == [(1, field)]
    assert count(Event, event_id="ok-1") == 1 and count(Event, event_id="ok-2") == 1


@pytest.mark.parametrize(
    "body, status, field",
    [
        ("not json", 400, None),
        ("[1, 2]", 400, None),
        ('{"events": []}', 401, "key"),
        ('{"key": "pk_nope", "events": []}', 401, "key"),
    ],
)
def test_bad_envelopes(client, site, body, status, field):
    r = client.post("/api/v1/events", data=body, content_type="application/json")
    assert r.status_code == status
    assert r.json["error"]["message"]
    if field:
        assert r.json["error"]["field"] == field


def test_too_many_events_is_413(client, site):
    events = [{"id": f"e{i}", "type": "page_viewed", "visitor": "v"} for i in range(101)]
    r = post(client, site.public_key, events)
    assert r.status_code == 413 and r.json["error"]["field"] == "events"


def test_other_origins_are_refused_and_allowed_ones_get_cors(client, site):
    events = [{"id": "c1", "type": "page_viewed", "visitor": "v"}]
    r = post(client, site.public_key, events, Origin="https://evil.example")
    assert r.status_code == 403 and r.json["error"]["field"] == "Origin"
    r = post(client, site.public_key, events, Origin="https://shop.example")
    assert r.status_code == 202
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"


def test_secret_key_endpoints_refuse_public_key(client, site):
    r = client.get("/api/v1/products", headers={"Authorization": f"Bearer {site.public_key}"})
    assert r.status_code == 403


def test_hook_event_received(app, client, site):
    """Plugins hear about each newly stored event once, after it is stored."""
    from personalize import hookimpl

    heard = []

    class Listener:
        @hookimpl
        def event_received(self, site_id, event):
            heard.append((site_id, event.event_id, event.type, count(Event, event_id=event.event_id)))

    app.extensions["personalize.plugins"].pm.register(Listener())
    events = [{"id": "h1", "type": "product_viewed", "visitor": "v9", "product_id": "tea-pot"}]
    post(client, site.public_key, events)
    post(client, site.public_key, events)
    assert heard == [(site.id, "h1", "product_viewed", 1)]
