"""Catalogue endpoints (secret key): batch upsert, read."""

from __future__ import annotations

from flask import request

from ..catalog import count_products, get_product, list_products, upsert_products
from ..records import ProductRecord
from ..validation import InvalidInput, mapping, number, only_known, text, whole_number
from . import bp
from .auth import secret_site
from .errors import ApiError
from .events import json_body

MAX_PRODUCTS = 1000
PRODUCT_FIELDS = {"id", "title", "url", "image", "price", "currency", "category", "description", "in_stock", "attributes"}


def _url(obj: dict, key: str, path: str) -> str:
    value = text(obj, key, path, max_len=2000) or ""
    if value and not (value.startswith(("http://", "https://", "/")) and not value.startswith("//")):
        raise InvalidInput(f"{path}{key}", "must be an http(s) URL or a path starting with /")
    return value


def parse_product(raw, i: int) -> ProductRecord:
    path = f"products[{i}]."
    if not isinstance(raw, dict):
        raise InvalidInput(f"products[{i}]", "must be an object")
    only_known(raw, PRODUCT_FIELDS, path)
    in_stock = raw.get("in_stock", True)
    if not isinstance(in_stock, bool):
        raise InvalidInput(f"{path}in_stock", "must be true or false")
    return ProductRecord(
        id=text(raw, "id", path, required=True),
        title=text(raw, "title", path, required=True, max_len=500),
        url=_url(raw, "url", path),
        image=_url(raw, "image", path),
        price=number(raw, "price", path, minimum=0, maximum=1e9),
        currency=text(raw, "currency", path, max_len=8) or "",
        category=text(raw, "category", path) or "",
        description=text(raw, "description", path, max_len=20000) or "",
        in_stock=in_stock,
        attributes=mapping(raw, "attributes", path),
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
    only_known(body, {"products"}, "")
    products = body.get("products")
    if not isinstance(products, list) or not products:
        raise InvalidInput("products", "must be a non-empty list of products", "missing")
    if len(products) > MAX_PRODUCTS:
        raise ApiError(413, "too_many_products", f"at most {MAX_PRODUCTS} products per request", "products")
    records = [parse_product(raw, i) for i, raw in enumerate(products)]
    result = upsert_products(site.id, records)
    return {"inserted": result.inserted, "updated": result.updated, "unchanged": result.unchanged}


@bp.get("/products")
def index():
    site = secret_site()
    limit = request.args.get("limit", "100")
    offset = request.args.get("offset", "0")
    if not 1 <= (whole_number(limit) or 0) <= 1000:
        raise ApiError(400, "invalid", "must be a whole number from 1 to 1000", "limit")
    if whole_number(offset) is None or whole_number(offset) > 10**9:
        raise ApiError(400, "invalid", "must be a whole number from 0", "offset")
    rows = list_products(site.id, limit=int(limit), offset=int(offset))
    return {"products": [product_json(p) for p in rows], "total": count_products(site.id), "limit": int(limit), "offset": int(offset)}


@bp.get("/products/<path:product_id>")
def show(product_id: str):
    site = secret_site()
    if len(product_id) > 200:
        raise ApiError(400, "invalid", "is longer than 200 characters", "product_id")
    p = get_product(site.id, product_id)
    if p is None:
        raise ApiError(404, "not_found", f"no product {product_id!r} in this site's catalogue", "product_id")
    return product_json(p)
