"""``POST /api/v1/rank``: a listing or search page's products re-ordered for the visitor."""

from __future__ import annotations

from flask import Response, current_app, request

from .. import metrics
from ..catalog.currency import site_currency
from ..recommend.service import rank_for, use_read_connection
from ..validation import json_text
from . import bp
from .errors import ApiError
from .events import json_body
from .widget_keys import widget_site

MAX_PRODUCTS = 200  # ids one request may re-order
_FIELDS = ("key", "visitor", "products", "limit")

RANKED = metrics.counter("personalize_rank_lists_total", "Lists re-ordered by POST /api/v1/rank, by strategy (rank, as-given).", ["strategy"])


@bp.route("/rank", methods=["POST", "OPTIONS"])
def post_rank():
    if request.method == "OPTIONS":
        return "", 204
    use_read_connection()  # this endpoint writes nothing
    body = json_body()
    key = body.get("key") if isinstance(body.get("key"), str) else None
    site = widget_site(key)
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise ApiError(400, "unknown_field", f"is not a known field (known: {', '.join(_FIELDS)})", unknown[0])
    visitor = body.get("visitor")
    if visitor is not None and (not isinstance(visitor, str) or not 1 <= len(visitor) <= 128):
        raise ApiError(400, "invalid", "must be a string of 1 to 128 characters", "visitor")
    products = body.get("products")
    if not isinstance(products, list) or not products:
        raise ApiError(400, "missing" if products is None else "invalid", "must be a non-empty list of product ids", "products")
    if len(products) > MAX_PRODUCTS:
        raise ApiError(413, "too_many_products", f"at most {MAX_PRODUCTS} product ids per request", "products")
    for i, pid in enumerate(products):
        if not isinstance(pid, str) or not 1 <= len(pid) <= 200:
            raise ApiError(400, "invalid", "must be a product id: a string of 1 to 200 characters", f"products[{i}]")
    max_limit = current_app.config["RECOMMENDATION_LIMIT_MAX"]
    limit = body.get("limit", 8)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= max_limit:
        raise ApiError(400, "invalid", f"must be a whole number from 1 to {max_limit}", "limit")
    ids = list(dict.fromkeys(products))  # each once, first place kept
    result = rank_for(site, visitor, ids, limit)
    RANKED.add((result.strategy,))
    answer = result.as_json()
    currency = site_currency(site)
    answer["items"] = [item if item.get("currency") else {**item, "currency": currency} for item in answer["items"]]
    body = json_text(answer, separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-store"})
