"""Catalogue endpoints (secret key): batch upsert, read."""

from __future__ import annotations

import re

from flask import request

from ..catalog import count_products, get_product, list_products, upsert_products
from ..records import ProductRecord
from ..shapes import Boolean, List, Map, Number, Obj, Query, Text, WholeText
from . import bp
from .auth import secret_site
from .errors import ApiError
from .events import json_body

MAX_PRODUCTS = 1000
# a product's address or picture: absolute http(s), or a path on the shop's own site (not "//host", which
# leaves the site); a relative path such as "p/mug" has no base to resolve against, so it is refused
URL_RE = re.compile(r"^(https?://|/$|/[^/])")
_URL = Text(2000, pattern=URL_RE, pattern_message="must be an http(s) URL or a path starting with /",
            description="an http(s) URL, or a path on the shop's site starting with / (not //)")
PRODUCT = Obj({
    "id": Text(200, required=True, description="your product id"),
    "title": Text(500, required=True),
    "url": _URL,
    "image": _URL,
    "price": Number(0, 1e9),
    "currency": Text(8),
    "category": Text(200),
    "description": Text(20000),
    "in_stock": Boolean(default=True),
    "attributes": Map(50),
})
UPSERT = Obj({"products": List(PRODUCT, min_items=1, max_items=MAX_PRODUCTS, required=True,
                               missing_message="must be a non-empty list of products")})
PRODUCT_FIELDS = set(PRODUCT.fields)
PAGE = Query({
    "limit": (WholeText(1, 1000, 100), "page size"),
    "offset": (WholeText(0, 10**9, 0, message="must be a whole number from 0"), "products to skip"),
})


def parse_product(raw, i: int) -> ProductRecord:
    return _record(PRODUCT.read_object(raw, f"products[{i}]"))


def _record(v: dict) -> ProductRecord:
    return ProductRecord(
        id=v["id"], title=v["title"], url=v["url"] or "", image=v["image"] or "", price=v["price"],
        currency=v["currency"] or "", category=v["category"] or "", description=v["description"] or "",
        in_stock=v["in_stock"], attributes=v["attributes"],
    )


def product_json(p) -> dict:
    return {
        "id": p.external_id, "title": p.title, "url": p.url, "image": p.image, "price": p.price,
        "currency": p.currency, "category": p.category, "description": p.description,
        "in_stock": p.in_stock, "attributes": p.attributes or {}, "updated_at": p.updated_at.isoformat() + "Z",
    }


@bp.post("/products")
def upsert():
    site = secret_site()
    body = json_body()
    products = body.get("products")
    if isinstance(products, list) and len(products) > MAX_PRODUCTS:
        raise ApiError(413, "too_many_products", f"at most {MAX_PRODUCTS} products per request", "products")
    records = [_record(v) for v in UPSERT.read_object(body, "")["products"]]
    result = upsert_products(site.id, records)
    return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged}


@bp.get("/products")
def index():
    site = secret_site()
    q = PAGE.read(request.args)
    rows = list_products(site.id, limit=q["limit"], offset=q["offset"])
    return {"products": [product_json(p) for p in rows], "total": count_products(site.id), "limit": q["limit"], "offset": q["offset"]}


@bp.get("/products/<path:product_id>")
def show(product_id: str):
    site = secret_site()
    if len(product_id) > 200:
        raise ApiError(400, "invalid", "is longer than 200 characters", "product_id")
    p = get_product(site.id, product_id)
    if p is None:
        raise ApiError(404, "not_found", f"no product {product_id!r} in this site's catalogue", "product_id")
    return product_json(p)
