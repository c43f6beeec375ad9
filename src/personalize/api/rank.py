"""``POST /api/v1/rank``: a listing or search page's products re-ordered for the visitor."""

from __future__ import annotations

from flask import Response, current_app, request

from .. import metrics
from ..catalog.currency import site_currency
from ..recommend.service import rank_for, use_read_connection
from ..shapes import Anything, List, Obj, Text, Whole
from ..validation import json_text
from . import bp
from .errors import ApiError
from .events import json_body
from .widget_keys import widget_site

MAX_PRODUCTS = 200  # ids one request may re-order


def rank_body(max_limit: int) -> Obj:
    """The body of POST /rank: read here, and shown in the OpenAPI description."""
    return Obj({
        "key": Anything("the public key, when not sent as ?key= or X-Personalize-Key", {"type": "string", "maxLength": 200}),
        "visitor": Text(128, min_len=1, description="the widget's visitor id; omit for a first visit"),
        "products": List(Text(200, required=True), min_items=1, max_items=MAX_PRODUCTS, required=True,
                         missing_message="must be a non-empty list of product ids", empty_code="invalid",
                         message="must be a non-empty list of product ids",
                         description="the listing's product ids"),
        "limit": Whole(1, max_limit, default=8, description="how many cards in items"),
    })


_FIELDS = tuple(rank_body(8).fields)

RANKED = metrics.counter("personalize_rank_lists_total", "Lists re-ordered by POST /api/v1/rank, by strategy (rank, as-given, holdout).", ["strategy"])


@bp.route("/rank", methods=["POST", "OPTIONS"])
def post_rank():
    if request.method == "OPTIONS":
        return "", 204
    use_read_connection()  # this endpoint writes nothing
    body = json_body()
    key = body.get("key") if isinstance(body.get("key"), str) else None
    site = widget_site(key)
    products = body.get("products")
    if isinstance(products, list) and len(products) > MAX_PRODUCTS:
        raise ApiError(413, "too_many_products", f"at most {MAX_PRODUCTS} product ids per request", "products")
    v = rank_body(current_app.config["RECOMMENDATION_LIMIT_MAX"]).read_object(body, "")
    visitor, limit = v["visitor"], v["limit"]
    ids = list(dict.fromkeys(v["products"]))  # each once, first place kept
    result = rank_for(site, visitor, ids, limit)
    RANKED.add((result.strategy,))
    answer = result.as_json()
    currency = site_currency(site)
    answer["items"] = [item if item.get("currency") else {**item, "currency": currency} for item in answer["items"]]
    body = json_text(answer, separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-store"})
