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
from ..shapes import Query, Text, WholeText
from ..validation import InvalidInput, json_text
from . import bp
from .people import PERSON, person_param
from .widget_keys import widget_site

_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_LANG = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
MAX_CART = 50  # product ids in a cart= list
STRATEGIES = ("personal", *PAGE_STRATEGIES)

LISTS = metrics.counter("personalize_recommendation_lists_total", "Recommendation lists served by GET /api/v1/recommendations, "
                        "by strategy (personal, popular…).", ["strategy"])


def _token(max_len: int) -> Text:
    return Text(max_len, pattern=_TOKEN, pattern_message=f"must be at most {max_len} letters, digits or _ . : -")


def _cart(value: str, field: str) -> list[str]:
    """``cart=SKU1,SKU2``: the cart's product ids (the page knows them); absent: the server's own idea."""
    ids = [part.strip() for part in value.split(",") if part.strip()]
    if len(ids) > MAX_CART or any(len(pid) > 200 for pid in ids):
        raise InvalidInput(field, f"must be at most {MAX_CART} product ids of at most 200 characters, separated by commas")
    return ids


def recommendations_query(max_limit: int) -> Query:
    """The query of GET /recommendations: read here, and shown in the OpenAPI description."""
    return Query({
        "visitor": (_token(128), "the widget's visitor id; omit on a first visit"),
        "customer_id": (PERSON["customer_id"], "secret key only: the shop's customer id of the person"),
        "email": (PERSON["email"], "secret key only: the person's email address"),
        "slot": (Text(64, pattern=_TOKEN, pattern_message="must be at most 64 letters, digits or _ . : -"), "the page slot (home when absent)"),
        "limit": (WholeText(1, max_limit, 8), "how many items"),
        "product": (Text(200), "the product of the current page: left out of the list"),
        "strategy": (Text(32, enum=STRATEGIES),
                     "instead of the strategy the slot's type chooses (product: similar, cart: cart, recent: recent)"),
        # at most 50 ids of at most 200 characters: 50 x 201 - 1 characters; the documented form is
        # ids of letters, digits and _ . : - separated by commas
        "cart": (Text(4096, check=_cart, pattern=re.compile(r"^([A-Za-z0-9_.:\-]{1,80}(,[A-Za-z0-9_.:\-]{1,80}){0,49})?$")),
                 "the cart's product ids, separated by commas (at most 50 of at most 200 characters, 4096 in all); never shown"),
        "lang": (Text(16, pattern=_LANG, pattern_message="must be at most 16 letters, digits or _ . : -"),
                 "the page's language (de, fr, es…): reasons and `label` said in it; English otherwise"),
    })


@bp.teardown_request
def _release_read_connection(_exc):
    release_read_connection()


@bp.route("/recommendations", methods=["GET", "OPTIONS"])
def get_recommendations():
    if request.method == "OPTIONS":
        return "", 204
    use_read_connection()  # this endpoint writes nothing
    site = widget_site()
    query = recommendations_query(current_app.config["RECOMMENDATION_LIMIT_MAX"])
    limit = query.read_one(request.args, "limit")
    visitor, kind = person_param(query.read_one(request.args, "visitor"))  # customer_id / email: secret key only (api/people.py)
    slot = query.read_one(request.args, "slot") or "home"
    product = query.read_one(request.args, "product")
    strategy = query.read_one(request.args, "strategy")
    cart = None  # absent: the server's own idea of the cart; given (even empty): the page's
    if request.args.get("cart") is not None:
        cart = query.read_one(request.args, "cart") or []
    result = recommend_for(site, visitor, slot=slot, limit=limit, product=product, cart=cart, strategy=strategy, kind=kind)
    LISTS.add((result.strategy,))
    answer = result.as_json()
    # each item in its product's own currency, else the site's (catalog/currency.py); "" when neither is known
    currency = site_currency(site)
    answer["items"] = [item if item.get("currency") else {**item, "currency": currency} for item in answer["items"]]
    lang = language(query.read_one(request.args, "lang"))  # the page's language: reasons said in it (reasons.py)
    if lang is not None:
        answer["items"] = [localize(item, lang) for item in answer["items"]]
    answer["label"] = list_label(lang)
    body = json_text(answer, separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-store"})
