"""The widget's two endpoints (events, recommendations) find their site by public key on every
request; this is that look-up, kept lean because it runs on every widget call."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

from flask import g, request
from sqlalchemy import bindparam, select

from ..limits import check_site
from ..models import Site
from ..recommend.service import DriverQuery
from .auth import check_origin, public_site
from .errors import ApiError


@dataclass(frozen=True)
class SiteView:
    """What answering a widget needs of a site, read straight from its row (see :func:`widget_site`)."""

    id: int
    public_key: str
    allowed_origins: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)


_SITE = DriverQuery(select(Site.id, Site.public_key, Site.allowed_origins, Site.settings).where(Site.public_key == bindparam("key")))


def _json(value, empty):
    if isinstance(value, str | bytes):  # SQLite keeps JSON as text
        value = json.loads(value)
    return empty if value is None else value


def widget_site(body_key: str | None = None) -> SiteView | Site:
    """The site of a public key, as :func:`personalize.api.auth.public_site` finds it (same key
    sources, origin check and rate limit), without loading an ORM object: one small query on the
    driver's cursor, every request, so a changed setting or origin counts at once. Secret keys
    take the usual way."""
    key = request.args.get("key") or body_key or request.headers.get("X-Personalize-Key") or ""
    if not key.startswith("pk_") or len(key) > 64:
        return public_site(body_key)
    rows = _SITE.rows({"key": key})
    if not rows or not hmac.compare_digest(rows[0][1], key):
        raise ApiError(401, "invalid_key", "unknown or revoked key", "key")
    sid, public_key, origins, settings = rows[0]
    site = SiteView(sid, public_key, _json(origins, []), _json(settings, {}))
    check_origin(site)
    g.site = site
    check_site(site.id, secret=False)
    return site
