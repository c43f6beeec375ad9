"""``/email/recs/…``: a person's recommendations inside any email, rendered when the email is opened.

Each address carries a sealed token (:mod:`personalize.profiles.contact_tokens`) naming the
person, for this site, until it expires; nothing else in it says who they are.

- ``GET /email/recs/<site>/<token>.png`` — the person's current list as one image, a grid of
  product cards (``?n=`` products, 1-12, default 4; ``?columns=`` 1-4, default 2);
- ``GET /email/recs/<site>/<token>/<n>.png`` — the card at position *n* alone (for a template that
  lays out one linked image per product);
- ``GET /email/recs/<site>/<token>/<n>`` — a click on position *n* of the image: a redirect to
  the product that was shown there, with ``pz_rec`` (the list's ``rec_id``) and ``pz_token`` (a
  fresh sealed token, valid a day) that the widget turns into attribution and a trusted identify;
- ``GET /email/recs/<site>/<token>/s<n>`` — the same for position *n* of the fields last pushed to
  an email provider or CRM (``REC<n>_URL``).

An unknown, altered or expired token answers 404 (an image address with an empty picture), however
it is wrong. Pictures of products are never fetched while an image is served.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, redirect, request

from .validation import whole_number

bp = Blueprint("email_block", __name__)

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{20,120}$")
_CLICK = re.compile(r"^(s?)([1-9][0-9]?)$")
# a 1×1 transparent PNG: what an email shows where a token is no longer good
_BLANK = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
CLICK_TOKEN_SECONDS = 86400


def _blank(status: int = 404) -> Response:
    return Response(_BLANK, status, mimetype="image/png", headers={"Cache-Control": "no-store"})


def _whole(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value in (None, ""):
        return default
    number = whole_number(value)
    if number is None or not low <= number <= high:
        abort(Response(f'{{"error":{{"code":"invalid","message":"must be a whole number from {low} to {high}","field":"{name}"}}}}',
                       400, mimetype="application/json"))
    return number


def _person(site_id: int, token: str):
    """``(site, profile id)`` of a valid token; ``None`` otherwise."""
    from .limits import check_site
    from .profiles.trust import read_site_token
    from .sites import get_site

    if not _TOKEN.match(token):
        return None
    site = get_site(site_id)
    if site is None:
        return None
    found = read_site_token(site.id, token, "email")
    if found is None:
        return None
    check_site(site.id, secret=False)  # the widget's budget: rendering costs
    return site, found.profile_id


def _list_for(site, profile_id: int, n: int):
    """The person's list now, remembered as what their block shows: ``(live id, items, version, rec_id)``."""
    from .recommend.channels import contact_recommendations, list_version, remember

    found = contact_recommendations(site, profile_id, n)
    if found is None:
        return None
    live, recs = found
    version = list_version(recs.items)
    rec_id = remember(site.id, live, "block", recs, version)
    return live, recs.items, version, rec_id


def _image(site_id: int, token: str, position: int | None):
    from .recommend.channels import render_block, site_addresses

    person = _person(site_id, token)
    if person is None:
        return _blank()
    site, profile_id = person
    n = _whole("n", 4, 1, 12)
    columns = _whole("columns", 2, 1, 4)
    if position is not None and position > 12:
        return _blank()
    found = _list_for(site, profile_id, max(n, position or 0))
    if found is None:
        return _blank()
    live, items, version, _rec_id = found
    if position is not None and position > len(items):
        return _blank()
    shown = items if position is not None else items[:n]
    _server, shop = site_addresses(site)
    png = render_block(site.id, live, version, shown, shop, columns=columns, position=position)
    etag = f'"{version[:20]}-{columns}-{position or 0}-{len(shown)}"'
    if request.headers.get("If-None-Match") == etag:
        return Response(status=304, headers={"ETag": etag, "Cache-Control": "private, no-cache"})
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-cache", "ETag": etag})


@bp.get("/email/recs/<int:site_id>/<token>.png")
def block_image(site_id: int, token: str):
    return _image(site_id, token, None)


@bp.get("/email/recs/<int:site_id>/<token>/<int:position>.png")
def card_image(site_id: int, token: str, position: int):
    return _image(site_id, token, position)


@bp.get("/email/recs/<int:site_id>/<token>/<click>")
def click(site_id: int, token: str, click: str):
    from .journeys.email import shop_hosts, tracked_link
    from .profiles.trust import site_token
    from .recommend.channels import shown_list, site_addresses
    from .recommend.service import cards_of

    match = _CLICK.match(click)
    person = _person(site_id, token) if match else None
    if person is None:
        abort(404)
    site, profile_id = person
    channel = "push" if match.group(1) else "block"
    position = int(match.group(2))
    from .profiles.merge import resolve_profile_id

    live = resolve_profile_id(site.id, profile_id)
    if live is None:
        abort(404)
    row = shown_list(site.id, live, channel)
    items, rec_id = (row.items, row.rec_id) if row is not None else ([], "")
    if row is None and channel == "block":  # the image was never loaded (pictures blocked): the list as it is now
        found = _list_for(site, live, max(4, position))
        if found is not None:
            _live, now_items, _version, rec_id = found
            items = [i["id"] for i in now_items]
    _server, shop = site_addresses(site)
    target = ""
    if 1 <= position <= len(items):
        card = cards_of(site.id, [items[position - 1]]).get(items[position - 1])
        if card is not None and card[2]:
            params = {"utm_source": "personalize", "utm_medium": "email", "utm_campaign": "recommendations", "pz_rec": rec_id,
                      "pz_token": site_token(site.id, live, CLICK_TOKEN_SECONDS)}
            target = tracked_link(shop, card[2], params, shop_hosts(shop, site.allowed_origins))
    if target and (urlsplit(target).hostname or "").lower() not in shop_hosts(shop, site.allowed_origins):
        target = ""  # this address redirects only to the shop's own hosts, never to wherever a product feed points
    if not target:  # the product left the catalogue, or the list is shorter now: the shop itself
        target = shop if shop.startswith(("http://", "https://")) else ""
    if not target:
        abort(404)
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    current_app.logger.debug("email click site %s position %s", site.id, position)
    return response
