"""Shopify: customers, products (with availability) and orders through the GraphQL Admin API;
order and customer webhooks with HMAC verification; segments pushed as customer tags.

The API version is pinned in :data:`API_VERSION` (Shopify answers a retired version
with the oldest supported one, silently: ``check`` reports the version we ask for
and a test asserts it). Authentication is a custom app's Admin API access token in
``X-Shopify-Access-Token``; the app needs the ``read_customers``,
``write_customers`` (for tags), ``read_products`` and ``read_orders`` scopes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from personalize import hookimpl
from personalize.records import (
    ActionResult,
    ActionTarget,
    AuthError,
    Checkpoint,
    CheckResult,
    ConfigError,
    Connector,
    ContactRecord,
    DeletedRecord,
    JourneyAction,
    OrderLine,
    OrderRecord,
    ProductRecord,
    PushResult,
    PushTarget,
    RetryLater,
    SegmentChange,
    Setting,
    SkippedRecord,
    Stream,
    StreamError,
    hmac_sha256_matches,
    parse_time,
)

__version__ = "1.0.0"

#: the GraphQL Admin API version every request names
API_VERSION = "2026-01"
PAGE_SIZE = {"customers": 100, "products": 100, "orders": 50}
LOOKBACK = timedelta(minutes=1)
STATE_VERSION = 1
PUSH_BATCH = 25
#: a shop's myshopify name: letters, digits and hyphens, optionally with its .myshopify.com domain
SHOP_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.myshopify\.com)?"

CUSTOMER_FIELDS = """
  id legacyResourceId firstName lastName tags numberOfOrders state createdAt updatedAt
  defaultEmailAddress { emailAddress marketingState }
  amountSpent { amount currencyCode }
"""
PRODUCT_FIELDS = """
  id legacyResourceId handle title description productType vendor tags status
  onlineStoreUrl totalInventory tracksInventory updatedAt
  featuredMedia { preview { image { url } } }
  priceRangeV2 { minVariantPrice { amount currencyCode } }
"""
ORDER_FIELDS = """
  id legacyResourceId name email createdAt processedAt updatedAt cancelledAt currencyCode
  customer { legacyResourceId }
  shippingAddress { countryCodeV2 }
  lineItems(first: 100) { nodes { title quantity product { legacyResourceId } originalUnitPriceSet { shopMoney { amount } } } }
"""
LIST_QUERY = """query Pull($first: Int!, $after: String, $query: String) {
  %(connection)s(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { %(fields)s }
  }
}"""


def gid(kind: str, legacy_id: str) -> str:
    return f"gid://shopify/{kind}/{legacy_id}"


def _iso(when: datetime) -> str:
    return when.replace(microsecond=0).isoformat() + "Z"



def _amount(money: Any) -> float | None:
    try:
        return float(money["amount"])
    except (TypeError, KeyError, ValueError):
        return None


class ShopifyConnector(Connector):
    name = "shopify"
    title = "Shopify"
    kind = "shop"
    version = __version__
    api_version = API_VERSION
    identity_kind = "customer_id"  # Shopify's numeric customer id is the shop's customer id
    default_mapping = {
        "firstName": "first_name", "lastName": "last_name", "tags": "shopify_tags", "numberOfOrders": "orders_count",
        "amountSpent": "total_spent", "marketingState": "email_marketing", "state": "shopify_account_state",
    }
    settings = (
        Setting("shop", "Shop", endpoint=True, pattern=SHOP_NAME,
                help="Your shop's myshopify name: letters, digits and hyphens, e.g. my-store (or my-store.myshopify.com)."),
        Setting("access_token", "Admin API access token", secret=True, help="From your custom app: Settings → Apps → Develop apps → API credentials (shpat_…)."),
        Setting("webhook_secret", "Webhook signing secret", secret=True, required=False, help="The app's API secret key; needed to accept webhooks."),
        Setting("tag_prefix", "Tag prefix", required=False, default="segment:", help="Segments become customer tags named prefix + segment name."),
        Setting("api_url", "API address", type="url", required=False,
                help="Leave empty: https://<shop>.myshopify.com. Another address (a proxy, a test server) works only when the server operator trusts it (OUTBOUND_ALLOWED_HOSTS)."),
    )
    allowed_hosts = ("*.myshopify.com",)
    streams = (
        Stream("customers", "contact", primary_key="id", cursor_field="updatedAt", lookback_seconds=60),
        Stream("products", "product", primary_key="id", cursor_field="updatedAt", lookback_seconds=60),
        Stream("orders", "order", primary_key="id", cursor_field="updatedAt", lookback_seconds=60),
    )
    push_targets = (PushTarget("tags", help="Adds or removes a customer tag per segment."),)
    push_batch_size = 100

    def __init__(self, context):
        super().__init__(context)
        shop = str(self.config.get("shop") or "").strip()
        if shop and not re.fullmatch(SHOP_NAME, shop):
            raise ConfigError(f"{shop!r} is not a shop name: use the myshopify name, letters, digits and hyphens, e.g. my-store")
        shop = shop.lower().removesuffix(".myshopify.com")
        base = self.config.get("api_url") or f"https://{shop}.myshopify.com"
        self.api = self.http.with_options(
            base_url=f"{str(base).rstrip('/')}/admin/api/{API_VERSION}",
            headers={"X-Shopify-Access-Token": str(self.config.get("access_token") or ""), "Content-Type": "application/json"},
        )

    # -- GraphQL with Shopify's error and throttle rules --

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.request("POST", "graphql.json", json={"query": query, "variables": variables or {}}, check=self._check_body)
        body = response.json()
        self._pace(body)
        return body["data"]

    def _check_body(self, response) -> None:
        try:
            body = response.json()
        except ValueError:
            raise StreamError("Shopify answered with something that is not JSON") from None
        errors = body.get("errors")
        if not errors:
            if body.get("data") is None:
                raise StreamError("Shopify answered without data")
            return
        if isinstance(errors, str):
            raise StreamError(f"Shopify: {errors}")
        codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)}
        if "THROTTLED" in codes or any("Throttled" in str(e.get("message")) for e in errors if isinstance(e, dict)):
            cost = (body.get("extensions") or {}).get("cost") or {}
            status = cost.get("throttleStatus") or {}
            need = float(cost.get("requestedQueryCost") or 100) - float(status.get("currentlyAvailable") or 0)
            rate = float(status.get("restoreRate") or 50) or 50.0
            raise RetryLater("throttled by Shopify", max(0.5, need / rate))
        if "ACCESS_DENIED" in codes:
            raise AuthError(f"Shopify refused access: {errors[0].get('message')}")
        raise StreamError("Shopify: " + "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))[:500])

    def _pace(self, body: dict[str, Any]) -> None:
        """Wait before the bucket runs dry, rather than being throttled."""
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        available, rate = status.get("currentlyAvailable"), status.get("restoreRate")
        requested = cost.get("requestedQueryCost") or 0
        if available is not None and rate and available < requested:
            self.http.sleep((requested - available) / rate)

    # -- operations --

    def check(self) -> CheckResult:
        if not self.config.get("shop") and not self.config.get("api_url"):
            raise ConfigError("the shop name is missing")
        data = self.graphql("query { shop { name myshopifyDomain } }")
        shop = data.get("shop") or {}
        return CheckResult(True, f"{shop.get('name')} ({shop.get('myshopifyDomain')}), Admin API {API_VERSION}", API_VERSION)

    def pull(self, stream: str, state: dict[str, Any] | None) -> Iterator[Any]:
        fields = {"customers": CUSTOMER_FIELDS, "products": PRODUCT_FIELDS, "orders": ORDER_FIELDS}[stream]
        convert = {"customers": self.customer, "products": self.product, "orders": self.order}[stream]
        state = state or {}
        until = self.context.started_at
        if state.get("until"):  # an interrupted window: finish it exactly as it was asked
            since, until, after = state.get("since"), state["until"], state.get("after")
        else:
            since = state.get("since")
            if since:
                since = _iso(parse_time(since) - LOOKBACK)
            until, after = _iso(until), None
        search = f"updated_at:<='{until}'" + (f" AND updated_at:>='{since}'" if since else "")
        query = LIST_QUERY % {"connection": stream, "fields": fields}
        while True:
            data = self.graphql(query, {"first": PAGE_SIZE[stream], "after": after, "query": search})
            page = data[stream]
            for node in page["nodes"]:
                yield convert(node)
            info = page["pageInfo"]
            if not info["hasNextPage"]:
                break
            after = info["endCursor"]
            yield Checkpoint({"v": STATE_VERSION, "since": since, "until": until, "after": after})
        yield Checkpoint({"v": STATE_VERSION, "since": until})

    # -- records --

    def customer(self, node: dict[str, Any]) -> ContactRecord | SkippedRecord:
        legacy = str(node.get("legacyResourceId") or "")
        if not legacy:
            return SkippedRecord("customer without id", str(node.get("id") or ""))
        email_info = node.get("defaultEmailAddress") or {}
        attrs = {k: node.get(k) for k in ("firstName", "lastName", "tags", "numberOfOrders", "state") if node.get(k) not in (None, "", [])}
        if isinstance(attrs.get("numberOfOrders"), str):
            attrs["numberOfOrders"] = int(attrs["numberOfOrders"])
        spent = _amount(node.get("amountSpent"))
        if spent is not None:
            attrs["amountSpent"] = spent
        if email_info.get("marketingState"):
            attrs["marketingState"] = email_info["marketingState"]
        return ContactRecord(external_id=legacy, email=email_info.get("emailAddress") or "", attributes=attrs,
                             updated_at=parse_time(node.get("updatedAt")))

    def product(self, node: dict[str, Any]) -> ProductRecord | SkippedRecord:
        legacy = str(node.get("legacyResourceId") or "")
        if not legacy or not node.get("title"):
            return SkippedRecord("product without id or title", str(node.get("id") or ""))
        price = (node.get("priceRangeV2") or {}).get("minVariantPrice") or {}
        image = (((node.get("featuredMedia") or {}).get("preview") or {}).get("image") or {}).get("url") or ""
        tracked = bool(node.get("tracksInventory"))
        in_stock = node.get("status") == "ACTIVE" and (not tracked or (node.get("totalInventory") or 0) > 0)
        return ProductRecord(
            id=legacy, title=node["title"], url=node.get("onlineStoreUrl") or "", image=image, price=_amount(price),
            currency=price.get("currencyCode") or "", category=node.get("productType") or "",
            description=(node.get("description") or "")[:5000], in_stock=in_stock,
            attributes={"vendor": node.get("vendor") or "", "handle": node.get("handle") or "", "tags": node.get("tags") or []},
        )

    def order(self, node: dict[str, Any]) -> OrderRecord | SkippedRecord:
        legacy = str(node.get("legacyResourceId") or "")
        when = parse_time(node.get("processedAt") or node.get("createdAt"))
        if not legacy or when is None:
            return SkippedRecord("order without id or date", str(node.get("id") or ""))
        if node.get("cancelledAt"):
            return SkippedRecord("cancelled order", legacy)
        lines = []
        for item in (node.get("lineItems") or {}).get("nodes") or []:
            product = item.get("product") or {}
            if not product.get("legacyResourceId"):
                continue  # a custom line without a product
            lines.append(OrderLine(product_id=str(product["legacyResourceId"]), quantity=float(item.get("quantity") or 1),
                                   price=_amount((item.get("originalUnitPriceSet") or {}).get("shopMoney")), title=item.get("title") or ""))
        if not lines:
            return SkippedRecord("order without product lines", legacy)
        customer = node.get("customer") or {}
        return OrderRecord(id=legacy, occurred_at=when, lines=tuple(lines), customer_id=str(customer.get("legacyResourceId") or ""),
                           email=node.get("email") or "", currency=node.get("currencyCode") or "",
                           country=(node.get("shippingAddress") or {}).get("countryCodeV2") or "")

    # -- webhooks (REST-shaped JSON bodies) --

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        return hmac_sha256_matches(self.config.get("webhook_secret") or "", body, headers.get("X-Shopify-Hmac-Sha256", ""))

    def webhook_delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return headers.get("X-Shopify-Webhook-Id") or super().webhook_delivery_id(headers, body)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Any]:
        topic = headers.get("X-Shopify-Topic", "")
        payload = json.loads(body)
        if topic == "customers/delete":  # the shop deleted the customer: what Shopify told us goes
            return [DeletedRecord("contact", str(payload["id"]))] if payload.get("id") else []
        if topic == "customers/redact":  # a privacy request sent through Shopify: erase the person here too
            customer = payload.get("customer") or {}
            return [DeletedRecord("contact", str(customer["id"]), erase=True)] if customer.get("id") else []
        if topic == "products/delete":
            return [DeletedRecord("product", str(payload["id"]))] if payload.get("id") else []
        if topic.startswith("customers/"):
            attrs = {"firstName": payload.get("first_name"), "lastName": payload.get("last_name"),
                     "tags": [t.strip() for t in (payload.get("tags") or "").split(",") if t.strip()]}
            return [ContactRecord(external_id=str(payload["id"]), email=payload.get("email") or "",
                                  attributes={k: v for k, v in attrs.items() if v not in (None, "", [])},
                                  updated_at=parse_time(payload.get("updated_at")))]
        if topic in ("orders/create", "orders/updated", "orders/paid") and not payload.get("cancelled_at"):
            lines = tuple(
                OrderLine(product_id=str(item["product_id"]), quantity=float(item.get("quantity") or 1),
                          price=float(item["price"]) if item.get("price") not in (None, "") else None, title=item.get("title") or "")
                for item in payload.get("line_items") or [] if item.get("product_id")
            )
            if not lines:
                return []
            customer = payload.get("customer") or {}
            return [OrderRecord(id=str(payload["id"]), occurred_at=parse_time(payload.get("processed_at") or payload.get("created_at")),
                                lines=lines, customer_id=str(customer.get("id") or ""), email=payload.get("email") or "",
                                currency=payload.get("currency") or "")]
        return []

    # -- push: segments as customer tags --

    def push(self, target: str, changes: list[SegmentChange]) -> list[PushResult]:
        prefix = self.config.get("tag_prefix") or ""
        results: list[PushResult] = []
        addressed: list[tuple[SegmentChange, str]] = []
        for change in changes:
            customer = change.identities.get("customer_id") or self._customer_by_email(change.email)
            if not customer:
                results.append(PushResult(change.profile_id, change.segment, "skipped", "no Shopify customer for this profile"))
            else:
                addressed.append((change, customer))
        for start in range(0, len(addressed), PUSH_BATCH):
            batch = addressed[start : start + PUSH_BATCH]
            parts, variables, decls = [], {}, []
            for i, (change, customer) in enumerate(batch):
                mutation = "tagsAdd" if change.added else "tagsRemove"
                decls.append(f"$id{i}: ID!, $tags{i}: [String!]!")
                parts.append(f"m{i}: {mutation}(id: $id{i}, tags: $tags{i}) {{ userErrors {{ field message }} }}")
                variables[f"id{i}"] = gid("Customer", customer)
                variables[f"tags{i}"] = [f"{prefix}{change.segment}"]
            data = self.graphql(f"mutation Tags({', '.join(decls)}) {{ {' '.join(parts)} }}", variables)
            for i, (change, _customer) in enumerate(batch):
                errors = (data.get(f"m{i}") or {}).get("userErrors") or []
                if errors:
                    results.append(PushResult(change.profile_id, change.segment, "failed", "; ".join(e.get("message", "") for e in errors)))
                else:
                    results.append(PushResult(change.profile_id, change.segment, "ok"))
        return results

    def _customer_by_email(self, email: str) -> str:
        if not email:
            return ""
        quoted = email.replace("\\", "").replace("'", "\\'")
        data = self.graphql(
            "query Find($query: String!) { customers(first: 1, query: $query) { nodes { legacyResourceId } } }",
            {"query": f"email:'{quoted}'"},
        )
        nodes = data["customers"]["nodes"]
        return str(nodes[0]["legacyResourceId"]) if nodes else ""


# -- journey actions (the register_journey_actions hook) --


def tag_customer(connector: ShopifyConnector, params: dict[str, Any], targets: list[ActionTarget]) -> list[ActionResult]:
    """Add a tag to each person's Shopify customer (``tagsAdd``, 25 customers a request; a tag the
    customer has already changes nothing)."""
    tag = str(params.get("tag") or "").strip()[:255]
    results: dict[str, ActionResult] = {}
    addressed: list[tuple[ActionTarget, str]] = []
    for t in targets:
        customer = t.identities.get("customer_id") or connector._customer_by_email(t.email)
        if customer:
            addressed.append((t, customer))
        else:
            results[t.key] = ActionResult(t.key, "skipped", "no Shopify customer for this profile")
    for start in range(0, len(addressed), PUSH_BATCH):
        batch = addressed[start : start + PUSH_BATCH]
        parts, variables, decls = [], {}, []
        for i, (_t, customer) in enumerate(batch):
            decls.append(f"$id{i}: ID!, $tags{i}: [String!]!")
            parts.append(f"m{i}: tagsAdd(id: $id{i}, tags: $tags{i}) {{ userErrors {{ field message }} }}")
            variables[f"id{i}"], variables[f"tags{i}"] = gid("Customer", customer), [tag]
        data = connector.graphql(f"mutation Tags({', '.join(decls)}) {{ {' '.join(parts)} }}", variables)
        for i, (t, _customer) in enumerate(batch):
            errors = (data.get(f"m{i}") or {}).get("userErrors") or []
            results[t.key] = ActionResult(t.key, "failed", "; ".join(e.get("message", "") for e in errors)) if errors else ActionResult(t.key, "ok")
    return [results[t.key] for t in targets]


@hookimpl
def register_journey_actions():
    return [
        JourneyAction("shopify", "tag_customer", "Tag the customer", tag_customer,
                      params=(Setting("tag", "Tag", help="The customer tag to add, e.g. vip-2026 or winback."),),
                      help="Adds a tag to the person's Shopify customer (found by customer id, else by email).", batch_size=PUSH_BATCH),
    ]


@hookimpl
def register_connectors():
    return [ShopifyConnector]
