"""``GET /api/v1/recommendations``: a visitor's list for a page slot."""

from __future__ import annotations

import re

from flask import Response, current_app, request

from .. import metrics
from ..catalog.currency import site_currency
from ..reasons import language, list_label, localize
from ..recommend.service import (
    PAGE_STRATEGIES,
    recommend_for,
    release_read_connection,
    use_read_connection,
)
from ..validation import json_text, whole_number
from . import bp
from .errors import ApiError
from .people import person_param
from .widget_keys import widget_site

_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_LANG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
MAX_CART = 50  # product ids in a cart= list
STRATEGIES = ("personal", *PAGE_STRATEGIES)

LISTS = metrics.counter("personalize_recommendation_lists_total", "Recommendation lists served by GET /api/v1/recommendations, "
                        "by strategy (personal, popular…).", ["strategy"])


def _param(name: str, default: str | None = None, max_len: int = 128, pattern=_TOKEN) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if len(value) > max_len or (pattern is not None and not pattern.match(value)):
        raise ApiError(400, "invalid", f"must be at most {max_len} letters, digits or _ . : -", name)
    return value


def _cart() -> list[str] | None:
    """``cart=SKU1,SKU2``: the cart's product ids (the page knows them); absent: the server's own idea."""
    text = request.args.get("cart")
    if text is None:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if len(ids) > MAX_CART or any(len(pid) > 200 for pid in ids):
        raise ApiError(400, "invalid", f"must be at most {MAX_CART} product ids of at most 200 characters, separated by commas", "cart")
    return ids


@bp.teardown_request
def _release_read_connection(_exc):
    release_read_connection()


@bp.route("/recommendations", methods=["GET", "OPTIONS"])
def get_recommendations():
    if request.method == "OPTIONS":
        return "", 204
    use_read_connection()  # this endpoint writes nothing
    site = widget_site()
    max_limit = current_app.config["RECOMMENDATION_LIMIT_MAX"]
    limit_text = request.args.get("limit", "8")
    if not 1 <= (whole_number(limit_text) or 0) <= max_limit:
        raise ApiError(400, "invalid", f"must be a whole number from 1 to {max_limit}", "limit")
    visitor, kind = person_param(_param("visitor"))  # customer_id / email: secret key only (api/people.py)
    slot = _param("slot", "home", 64)
    product = _param("product", None, 200, pattern=None)
    strategy = _param("strategy", None, 32)
    if strategy is not None and strategy not in STRATEGIES:
        raise ApiError(400, "invalid", f"must be one of {', '.join(STRATEGIES)}", "strategy")
    result = recommend_for(site, visitor, slot=slot, limit=int(limit_text), product=product, cart=_cart(), strategy=strategy, kind=kind)
    LISTS.add((result.strategy,))
    answer = result.as_json()
    # each item in its product's own currency, else the site's (catalog/currency.py); "" when neither is known
    currency = site_currency(site)
    answer["items"] = [item if item.get("currency") else {**item, "currency": currency} for item in answer["items"]]
    lang = language(_param("lang", None, 16, pattern=_LANG))  # the page's language: reasons said in it (reasons.py)
    if lang is not None:
        answer["items"] = [localize(item, lang) for item in answer["items"]]
    answer["label"] = list_label(lang)
    body = json_text(answer, separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-store"})
