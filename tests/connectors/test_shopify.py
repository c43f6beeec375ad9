"""Shopify against a local server speaking the GraphQL Admin API (the slice the connector uses)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta

import pytest
from personalize_shopify import API_VERSION
from sqlalchemy import func, select

from personalize.db import db
from personalize.models import Order, Product, Profile
from personalize.profiles.attributes import attributes_of
from personalize.profiles.identity import lookup
from personalize.records import SegmentChange
from personalize.sync import engine
from personalize.sync.connections import save_connection
from personalize.sync.push import push_changes
from personalize.sync.testing import ProviderServer

TOKEN = "shpat_test"
WEBHOOK_SECRET = "whsec-test"
GRAPHQL = f"/admin/api/{API_VERSION}/graphql.json"
T0 = datetime(2026, 11, 1, 12, 0, 0)


def iso(when: datetime) -> str:
    return when.isoformat() + "Z"


def customer(i: int, when: datetime) -> dict:
    return {
        "id": f"gid://shopify/Customer/{1000 + i}", "legacyResourceId": str(1000 + i), "firstName": f"First{i}", "lastName": "Doe",
        "tags": ["newsletter"] if i % 2 else [], "numberOfOrders": str(i % 3), "state": "ENABLED", "createdAt": iso(when), "updatedAt": iso(when),
        "defaultEmailAddress": {"emailAddress": f"customer{i}@example.com", "marketingState": "SUBSCRIBED"},
        "amountSpent": {"amount": f"{i * 10}.00", "currencyCode": "EUR"},
    }


class ShopifyAdmin:
    """The Admin GraphQL API slice: shop, customers, products, orders (paged, windowed on updated_at), tags."""

    def __init__(self, customers=(), products=(), orders=()):
        self.data = {"customers": list(customers), "products": list(products), "orders": list(orders)}
        self.queries: list[tuple[str, dict]] = []
        self.tags: dict[str, set[str]] = {}
        self.server = ProviderServer(check=self.check)
        self.server.on("POST", re.escape(GRAPHQL), self.graphql)

    def check(self, request):
        assert request.headers.get("X-Shopify-Access-Token") == TOKEN or request.headers.get("X-Shopify-Access-Token") == "shpat_revoked"
        assert request.mimetype == "application/json"

    @staticmethod
    def cost(available=1000.0):
        return {"cost": {"requestedQueryCost": 52, "actualQueryCost": 12,
                         "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": available, "restoreRate": 100.0}}}

    def graphql(self, request, match):
        if request.headers["X-Shopify-Access-Token"] != TOKEN:
            return 401, {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
        body = request.get_json()
        query, variables = body["query"], body.get("variables") or {}
        self.queries.append((query, variables))
        if "shop {" in query:
            return {"data": {"shop": {"name": "Test shop", "myshopifyDomain": "test-shop.myshopify.com"}}, "extensions": self.cost()}
        if query.startswith("mutation"):
            data = {}
            for alias, i, op in re.findall(r"(m(\d+)): (tagsAdd|tagsRemove)", query):
                gid, tags = variables[f"id{i}"], variables[f"tags{i}"]
                assert gid.startswith("gid://shopify/Customer/")
                current = self.tags.setdefault(gid, set())
                current.update(tags) if op == "tagsAdd" else current.difference_update(tags)
                data[alias] = {"userErrors": []}
            return {"data": data, "extensions": self.cost()}
        if "customers(first: 1" in query:
            email = re.match(r"email:'(.*)'", variables["query"]).group(1)
            nodes = [{"legacyResourceId": c["legacyResourceId"]} for c in self.data["customers"] if (c.get("defaultEmailAddress") or {}).get("emailAddress") == email]
            return {"data": {"customers": {"nodes": nodes}}, "extensions": self.cost()}
        name = re.search(r"\b(customers|products|orders)\(first: \$first", query).group(1)
        assert "sortKey: UPDATED_AT" in query
        items = self.window(self.data[name], variables["query"])
        start = int(base64.b64decode(variables["after"]).decode()) if variables.get("after") else 0
        page = items[start : start + variables["first"]]
        end = start + len(page)
        return {"data": {name: {"nodes": page, "pageInfo": {"hasNextPage": end < len(items), "endCursor": base64.b64encode(str(end).encode()).decode()}}},
                "extensions": self.cost()}

    @staticmethod
    def window(items, search):
        upper = re.search(r"updated_at:<='([^']+)'", search)
        lower = re.search(r"updated_at:>='([^']+)'", search)
        assert upper, "every list query is bounded by the sync's start"
        out = [n for n in items if n["updatedAt"] <= upper.group(1) and (not lower or n["updatedAt"] >= lower.group(1))]
        return sorted(out, key=lambda n: n["updatedAt"])


def product(i, status="ACTIVE", inventory=5, tracked=True):
    return {
        "id": f"gid://shopify/Product/{i}", "legacyResourceId": str(i), "handle": f"p{i}", "title": f"Product {i}", "description": "Nice.",
        "productType": "Mugs", "vendor": "Acme", "tags": [], "status": status, "onlineStoreUrl": f"https://shop.example/p{i}",
        "totalInventory": inventory, "tracksInventory": tracked, "updatedAt": iso(T0 - timedelta(days=1)),
        "featuredMedia": {"preview": {"image": {"url": f"https://cdn.example/p{i}.jpg"}}},
        "priceRangeV2": {"minVariantPrice": {"amount": "19.90", "currencyCode": "EUR"}},
    }


def order(i, customer_id, products, cancelled=False):
    return {
        "id": f"gid://shopify/Order/{i}", "legacyResourceId": str(i), "name": f"#{i}", "email": "", "createdAt": iso(T0 - timedelta(hours=2)),
        "processedAt": iso(T0 - timedelta(hours=2)), "updatedAt": iso(T0 - timedelta(hours=1)), "cancelledAt": iso(T0) if cancelled else None,
        "currencyCode": "EUR", "customer": {"legacyResourceId": str(customer_id)}, "shippingAddress": {"countryCodeV2": "DE"},
        "lineItems": {"nodes": [{"title": f"Product {p}", "quantity": 2, "product": {"legacyResourceId": str(p)},
                                 "originalUnitPriceSet": {"shopMoney": {"amount": "19.90"}}} for p in products]},
    }


@pytest.fixture
def admin(shop, monkeypatch):
    import personalize_shopify

    monkeypatch.setattr(personalize_shopify, "PAGE_SIZE", {"customers": 10, "products": 10, "orders": 10})  # faster, same paths
    customers = [customer(i, T0 - timedelta(minutes=300 - i)) for i in range(13)]
    customers.append({"id": "gid://shopify/Customer/broken", "legacyResourceId": None, "updatedAt": iso(T0 - timedelta(minutes=1))})
    api = ShopifyAdmin(customers, [product(1), product(2, inventory=0), product(3, status="DRAFT"), product(4, inventory=0, tracked=False)],
                       [order(501, 1001, [1, 2]), order(502, 1002, [4]), order(503, 1003, [1], cancelled=True)])
    with api.server:
        save_connection(shop.id, "shopify", {"shop": "test-shop", "access_token": TOKEN, "webhook_secret": WEBHOOK_SECRET, "api_url": api.server.url})
        yield api
    api.server.verify()


def sync(shop, sleep, **kw):
    return engine.run_sync(shop.id, "shopify", sleep=sleep, **kw)


def test_pins_a_dated_api_version():
    assert re.fullmatch(r"20\d\d-(01|04|07|10)", API_VERSION)
    assert API_VERSION == "2026-01"


def test_customers_products_and_orders_into_profiles(admin, shop, sleep):
    summary = sync(shop, sleep)
    assert summary["status"] == "succeeded", summary
    assert summary["streams"]["customers"] == {"in": 13, "stored": 13, "skipped": 1, "status": "succeeded", "error": ""}
    assert "Admin API 2026-01" in summary["message"], "check reports the pinned version"
    pid = lookup(shop.id, "customer_id", ["1001"])["1001"]
    assert lookup(shop.id, "email", ["customer1@example.com"])["customer1@example.com"] == pid
    attrs = {k: v["value"] for k, v in attributes_of(pid).items()}
    assert attrs["first_name"] == "First1" and attrs["shopify_tags"] == ["newsletter"] and attrs["total_spent"] == 10.0
    assert attrs["orders_count"] == 1 and attrs["email_marketing"] == "SUBSCRIBED"
    stock = dict(db.session.execute(select(Product.external_id, Product.in_stock)).all())
    assert stock == {"1": True, "2": False, "3": False, "4": True}, "drafts and tracked products without inventory are unavailable"
    orders = {o.external_id: o for o in db.session.scalars(select(Order))}
    assert set(orders) == {"501", "502"} and orders["501"].profile_id == pid and orders["501"].total == pytest.approx(79.6)
    assert summary["streams"]["orders"]["skipped"] == 1  # the cancelled one
    pages = [v for q, v in admin.queries if "customers(first: $first" in q]
    assert [bool(v["after"]) for v in pages] == [False, True]


def test_interrupted_sync_resumes_on_the_same_window_without_duplicates(admin, shop, sleep):
    refused = []
    answer = admin.graphql

    def down_after_the_first_page(request, match):
        body = request.get_json()
        if "customers(first: $first" in body["query"] and body["variables"].get("after") and not refused:
            refused.append(body["variables"])
            return 503, {"errors": "unavailable"}
        return answer(request, match)

    admin.server.routes[0].handler = down_after_the_first_page
    failed = engine.run_sync(shop.id, "shopify", sleep=sleep, streams=["customers"], http_options={"max_retries": 0})
    assert failed["status"] == "failed" and "unavailable" in failed["message"]
    cursor = failed["cursor"]["customers"]
    assert cursor["after"] == refused[0]["after"] and cursor["until"]
    assert failed["records_out"] == 10
    resumed = engine.run_sync(shop.id, "shopify", sleep=sleep, streams=["customers"])
    assert resumed["status"] == "succeeded" and resumed["records_in"] == 3
    last = [v for q, v in admin.queries if "customers(first: $first" in q][-1]
    assert last["after"] == cursor["after"] and last["query"] == refused[0]["query"], "the same window, from the same page"
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 13


def test_the_next_run_asks_only_for_changes_since_the_last_one(admin, shop, sleep):
    first = sync(shop, sleep, streams=["customers"])
    since = first["cursor"]["customers"]["since"]
    # a change that became visible late, stamped just before the last run's bound: the lookback catches it
    admin.data["customers"].append(customer(500, datetime.fromisoformat(since[:-1]) - timedelta(seconds=30)))
    admin.queries.clear()
    second = sync(shop, sleep, streams=["customers"])
    assert second["records_in"] == 1
    query = admin.queries[-1][1]["query"]
    lower = re.search(r"updated_at:>='([^']+)'", query).group(1)
    assert datetime.fromisoformat(lower[:-1]) == datetime.fromisoformat(since[:-1]) - timedelta(minutes=1), "a minute of lookback"


def test_throttled_answers_are_waited_out(admin, shop, sleep):
    throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                 "extensions": {"cost": {"requestedQueryCost": 252, "actualQueryCost": None,
                                         "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 52.0, "restoreRate": 100.0}}}}
    admin.server.fault("POST", re.escape(GRAPHQL), 200, throttled, times=2)
    summary = sync(shop, sleep, streams=["products"])
    assert summary["status"] == "succeeded"
    assert sleep.calls[:2] == [2.0, 2.0]


def test_an_invalid_token_fails_clearly_and_writes_nothing(admin, shop, sleep):
    save_connection(shop.id, "shopify", {"access_token": "shpat_revoked"})
    summary = sync(shop, sleep)
    assert summary["status"] == "failed"
    assert "credentials refused" in summary["message"] and "401 Unauthorized" in summary["message"]
    assert "Invalid API key or access token" not in summary["message"], "the provider's answer is not repeated to the admin"
    assert db.session.scalar(select(func.count()).select_from(Profile)) == 0


def test_a_graphql_error_fails_only_its_stream(admin, shop, sleep):
    original = admin.graphql

    def broken_orders(request, match):
        if "orders(first" in request.get_json()["query"]:
            return {"errors": [{"message": "Field 'cancelledAt' doesn't exist on type 'Order'"}], "data": None}
        return original(request, match)

    admin.server.routes[0].handler = broken_orders
    summary = sync(shop, sleep)
    assert summary["status"] == "partial"
    assert "doesn't exist" in summary["streams"]["orders"]["error"]
    assert summary["streams"]["products"]["status"] == "succeeded"


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_webhooks_are_verified_stored_once_and_applied_in_the_background(admin, shop, app, client):
    from personalize import jobs

    admin.server.routes[0].required = False  # webhooks need no API call
    payload = {"id": 9001, "email": "walkin@example.com", "created_at": "2026-11-20T10:00:00Z", "currency": "EUR",
               "customer": {"id": 7001, "email": "walkin@example.com"}, "cancelled_at": None,
               "line_items": [{"product_id": 1, "quantity": 1, "price": "19.90", "title": "Product 1"}]}
    body = json.dumps(payload).encode()
    url = f"/api/v1/webhooks/{shop.public_key}/shopify"
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-1", "Content-Type": "application/json"}
    bad = client.post(url, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": sign(body, "wrong")})
    assert bad.status_code == 401 and bad.json["error"]["code"] == "invalid_signature"
    ok = client.post(url, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": sign(body)})
    assert ok.status_code == 200 and ok.json == {"accepted": True, "duplicate": False}
    again = client.post(url, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": sign(body)})
    assert again.json["duplicate"] is True
    jobs.runner(app).wait(10)
    db.session.expire_all()
    order_row = db.session.scalar(select(Order).where(Order.external_id == "9001"))
    assert order_row is not None and order_row.profile_id == lookup(shop.id, "customer_id", ["7001"])["7001"]
    assert client.post(f"/api/v1/webhooks/{shop.public_key}/nope", data=body).status_code == 404


def test_deletions_arrive_by_webhook_a_redact_erases_the_person(admin, shop, app, client, sleep):
    """customers/delete unlinks the customer and drops what Shopify said about them; customers/redact
    (a privacy request) erases the profile; products/delete takes the product off the shelf at once."""
    from personalize import jobs
    from personalize.profiles import ingest_events
    from personalize.sync.models import WebhookDelivery

    assert sync(shop, sleep)["status"] == "succeeded"
    deleted, redacted = lookup(shop.id, "customer_id", ["1001", "1002"]).values()
    assert attributes_of(deleted), "the sync gave the customer Shopify's attributes"
    ingest_events(shop, [{"id": "v-1", "type": "product_viewed", "visitor": "v-deleted", "product_id": "1"}])
    db.session.commit()
    assert db.session.scalar(select(Product).where(Product.site_id == shop.id, Product.external_id == "1")) is not None

    def deliver(topic: str, payload: dict, n: int) -> None:
        body = json.dumps(payload).encode()
        r = client.post(f"/api/v1/webhooks/{shop.public_key}/shopify", data=body, headers={
            "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": f"del-{n}", "Content-Type": "application/json", "X-Shopify-Hmac-Sha256": sign(body)})
        assert r.status_code == 200, r.json

    deliver("customers/delete", {"id": 1001}, 1)
    deliver("customers/redact", {"shop_id": 1, "shop_domain": "test-shop.myshopify.com",
                                 "customer": {"id": 1002, "email": "customer2@example.com", "phone": ""}, "orders_to_redact": [502]}, 2)
    deliver("products/delete", {"id": 1}, 3)
    deliver("customers/delete", {"id": 999999}, 4)  # never synced: nothing to do, and no error
    jobs.runner(app).wait(10)
    db.session.expire_all()
    # every delivery processed without error; the redact's own payload named the person, so the erase took it too
    kept = {d.delivery_id: d for d in db.session.scalars(select(WebhookDelivery))}
    assert sorted(kept) == ["del-1", "del-3", "del-4"]
    assert all(d.error == "" and d.processed_at is not None for d in kept.values()), [(d.delivery_id, d.error, d.processed_at) for d in kept.values()]

    assert lookup(shop.id, "customer_id", ["1001"]) == {}
    assert db.session.get(Profile, deleted) is not None, "the person is still a shopper here"
    assert not any(a["source"] == "shopify" for a in attributes_of(deleted).values()), attributes_of(deleted)
    assert lookup(shop.id, "email", ["customer1@example.com"]) == {"customer1@example.com": deleted}

    assert db.session.get(Profile, redacted) is None
    assert lookup(shop.id, "email", ["customer2@example.com"]) == {}
    assert db.session.scalar(select(func.count()).select_from(Order).where(Order.external_id == "502")) == 0

    assert db.session.scalar(select(Product).where(Product.site_id == shop.id, Product.external_id == "1")) is None
    r = client.get("/api/v1/recommendations", query_string={"key": shop.public_key, "visitor": "v-deleted", "limit": 10})
    assert r.status_code == 200 and "1" not in [i["id"] for i in r.json["items"]]


def test_push_segments_as_customer_tags(admin, shop, sleep):
    sync(shop, sleep, streams=["customers"])
    one = lookup(shop.id, "customer_id", ["1001"])["1001"]
    guest = engine.store.profiles_for(shop.id, "email", ["nobody@example.com"])["nobody@example.com"]
    db.session.commit()
    result = push_changes(shop.id, "shopify", "tags", [SegmentChange("VIP", one, True), SegmentChange("VIP", guest, True)], sleep=sleep)
    assert [r.status for r in result["results"]] == ["ok", "skipped"]
    assert admin.tags["gid://shopify/Customer/1001"] == {"segment:VIP"}
    push_changes(shop.id, "shopify", "tags", [SegmentChange("VIP", one, False)], sleep=sleep)
    assert admin.tags["gid://shopify/Customer/1001"] == set()


def test_resume_states_conform(admin):
    from personalize_shopify import ShopifyConnector

    from personalize.connectors import ConnectorContext
    from personalize.sync.http import HttpClient
    from personalize.sync.testing import check_resume, local_policy, recording_sleep

    admin.server.routes[0].required = True
    settings = {"shop": "test-shop", "access_token": TOKEN, "api_url": admin.server.url}

    def make():
        return ShopifyConnector(ConnectorContext(settings=settings, http=HttpClient(sleep=recording_sleep(), policy=local_policy()), started_at=datetime(2026, 11, 22)))

    for stream in ("customers", "products", "orders"):
        assert check_resume(make, stream) == []


def test_journey_action_tags_the_customer(admin, shop, sleep):
    from .journeys import run_action_step

    sync(shop, sleep, streams=["customers"])
    one = lookup(shop.id, "customer_id", ["1001"])["1001"]
    guest = engine.store.profiles_for(shop.id, "email", ["nobody@example.com"])["nobody@example.com"]
    db.session.commit()
    got = run_action_step(shop.id, "shopify", "tag_customer", {"tag": "winback"}, [one, guest], sleep=sleep)
    assert {pid: v[0] for pid, v in got.items()} == {one: "acted", guest: "skipped_remote"}
    assert admin.tags["gid://shopify/Customer/1001"] == {"winback"}
