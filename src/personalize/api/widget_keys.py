"""The widget's two endpoints (events, recommendations) find their site by public key on every
request; this is that look-up, kept lean because it runs on every widget call."""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass, field

from flask import current_app, g, request
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from ..limits import check_site
from ..models import Site
from ..recommend.service import DriverQuery
from .auth import SITE_OF_REQUEST, check_origin, public_site
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


# (database URL, public key) -> (monotonic time it may be used until, SiteView); see widget_site()
_SITES: dict[tuple[str, str], tuple[float, SiteView]] = {}
_SITES_MAX = 10_000


def forget_sites(*_args) -> None:
    """Drop every remembered site (this process changed or deleted one)."""
    _SITES.clear()


@event.listens_for(Site, "after_insert")
@event.listens_for(Site, "after_update")
@event.listens_for(Site, "after_delete")
def _site_written(_mapper, _connection, _target) -> None:
    forget_sites()


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _transaction_ended(session, *_args) -> None:
    if session.info.pop("personalize_site_written", False):
        forget_sites()  # again: another request may have read the old row between the flush and the commit


@event.listens_for(Session, "before_flush")
def _before_flush(session, _context, _instances) -> None:
    if any(isinstance(o, Site) for o in (*session.dirty, *session.new, *session.deleted)):
        session.info["personalize_site_written"] = True


def widget_site(body_key: str | None = None) -> SiteView | Site:
    """The site of a public key, as :func:`personalize.api.auth.public_site` finds it (same key
    sources, origin check and rate limit), without loading an ORM object: one small query on the
    driver's cursor. Each process remembers what it read for ``SITE_CACHE_SECONDS`` (a public
    key opens a site on every widget call); a change made through this process (the admin, the
    API) makes it forget at once, one made through another process counts there within
    ``SITE_CACHE_SECONDS``. Secret keys take the usual way, read every time."""
    key = request.args.get("key") or body_key or request.headers.get("X-Personalize-Key") or ""
    if not key.startswith("pk_") or len(key) > 64:
        return public_site(body_key)
    config = current_app.config
    memo_key = (config["SQLALCHEMY_DATABASE_URI"], key)
    memo = _SITES.get(memo_key)
    now = time.monotonic()
    if memo is not None and memo[0] > now:
        site = memo[1]
    else:
        rows = _SITE.rows({"key": key})
        if not rows or not hmac.compare_digest(rows[0][1], key):
            raise ApiError(401, "invalid_key", "unknown or revoked key", "key")
        sid, public_key, origins, settings = rows[0]
        site = SiteView(sid, public_key, _json(origins, []), _json(settings, {}))
        seconds = float(config.get("SITE_CACHE_SECONDS") or 0)
        if seconds > 0:
            if len(_SITES) >= _SITES_MAX:
                _SITES.clear()
            _SITES[memo_key] = (now + seconds, site)
    origin = request.headers.get("Origin")
    if origin and site.allowed_origins and origin not in site.allowed_origins:
        check_origin(site)  # the full check (the server's own address is allowed too) only when the list says no
    g.site = site
    request.environ[SITE_OF_REQUEST] = site.id
    check_site(site.id, secret=False)
    return site
