"""``GET /api/v1/recommendations``: a visitor's list for a page slot."""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field

from flask import Response, current_app, g, request
from sqlalchemy import bindparam, select

from ..limits import check_site
from ..models import Site
from ..recommend.service import _Query, recommend_for
from . import bp
from .auth import check_origin, public_site
from .errors import ApiError

_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


@dataclass(frozen=True)
class SiteView:
    """What answering a widget needs of a site, read straight from its row (see :func:`widget_site`)."""

    id: int
    public_key: str
    allowed_origins: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)


_SITE = _Query(select(Site.id, Site.public_key, Site.allowed_origins, Site.settings).where(Site.public_key == bindparam("key")))


def _json(value, empty):
    if isinstance(value, str | bytes):  # SQLite keeps JSON as text
        value = json.loads(value)
    return empty if value is None else value


def widget_site() -> SiteView | Site:
    """The site of a public key, as :func:`personalize.api.auth.public_site` finds it, without
    loading an ORM object (the hot path: one small query on the driver's cursor, every request,
    so a changed setting or origin counts at once). Secret keys take the usual way."""
    key = request.args.get("key") or request.headers.get("X-Personalize-Key") or ""
    if not key.startswith("pk_") or len(key) > 64:
        return public_site()
    rows = _SITE.rows({"key": key})
    if not rows or not hmac.compare_digest(rows[0][1], key):
        raise ApiError(401, "invalid_key", "unknown or revoked key", "key")
    sid, public_key, origins, settings = rows[0]
    site = SiteView(sid, public_key, _json(origins, []), _json(settings, {}))
    check_origin(site)
    g.site = site
    check_site(site.id, secret=False)
    return site


def _param(name: str, default: str | None = None, max_len: int = 128, pattern=_TOKEN) -> str | None:
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if len(value) > max_len or (pattern is not None and not pattern.match(value)):
        raise ApiError(400, "invalid", f"must be at most {max_len} letters, digits or _ . : -", name)
    return value


@bp.route("/recommendations", methods=["GET", "OPTIONS"])
def get_recommendations():
    if request.method == "OPTIONS":
        return "", 204
    site = widget_site()
    max_limit = current_app.config["RECOMMENDATION_LIMIT_MAX"]
    limit_text = request.args.get("limit", "8")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= max_limit:
        raise ApiError(400, "invalid", f"must be a whole number from 1 to {max_limit}", "limit")
    visitor = _param("visitor")
    slot = _param("slot", "home", 64)
    product = _param("product", None, 200, pattern=None)
    result = recommend_for(site, visitor, slot=slot, limit=int(limit_text), product=product)
    body = json.dumps(result.as_json(), separators=(",", ":"))
    return Response(body, mimetype="application/json", headers={"Cache-Control": "private, no-store"})
