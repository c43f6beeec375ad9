"""Which site a request speaks for: public keys (widget) and secret keys (servers)."""

from __future__ import annotations

from flask import g, request

from ..limits import check_site
from ..models import Site
from ..sites import site_for_public_key, site_for_secret_key
from .errors import ApiError

#: the site a widget request spoke for, kept on the request itself (not ``g``, which a test's app context
#: shares between requests): api/cors.py records that site's refusals
SITE_OF_REQUEST = "personalize.site_id"


def public_site(body_key: str | None = None) -> Site:
    """The site of the public key in ``?key=``, the body, or ``X-Personalize-Key``; 401 otherwise.

    A secret key works too (a server may read recommendations), but only as
    ``Authorization: Bearer sk_…``: in a URL, a body or the widget's header it would end
    up in access logs and pages, so it is refused there. A public key never opens a
    secret-key endpoint.
    """
    key = request.args.get("key") or body_key or request.headers.get("X-Personalize-Key") or ""
    if key.startswith("sk_"):
        raise ApiError(401, "secret_key_exposed", "a secret key goes only in Authorization: Bearer sk_…, never in a URL, "
                       "a body or a page; rotate it if it was published, and use the public key (pk_…) here", "key")
    if not key:
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and bearer.strip().startswith("sk_"):
            key = bearer.strip()
    if not key:
        raise ApiError(401, "missing_key", "send the site's public key as ?key=pk_…", "key")
    site = site_for_public_key(key) if key.startswith("pk_") else site_for_secret_key(key)
    if site is None:
        raise ApiError(401, "invalid_key", "unknown or revoked key", "key")
    check_origin(site)
    g.site = site
    request.environ[SITE_OF_REQUEST] = site.id
    check_site(site.id, secret=False)  # the widget endpoints' budget, whichever key opened them
    return site


def secret_site() -> Site:
    """The site of the secret key in ``Authorization: Bearer sk_…``; 401/403 otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "missing_key", "send a secret key as Authorization: Bearer sk_…", "Authorization")
    if key.startswith("pk_"):
        raise ApiError(403, "forbidden", "a public key cannot do this; use a secret key (sk_…)", "Authorization")
    site = site_for_secret_key(key)
    if site is None:
        raise ApiError(401, "invalid_key", "unknown or revoked secret key", "Authorization")
    g.site = site
    check_site(site.id, secret=True)
    return site


def origin_allowed(site: Site, origin: str | None) -> bool:
    if not origin:
        return True
    if origin == request.host_url.rstrip("/"):
        return True
    allowed = site.allowed_origins or []
    return not allowed or origin in allowed


def check_origin(site: Site) -> None:
    origin = request.headers.get("Origin")
    if not origin_allowed(site, origin):
        request.environ[SITE_OF_REQUEST] = site.id  # the refusal is recorded for this site (api/cors.py)
        raise ApiError(403, "origin_not_allowed", f"{origin} is not an allowed origin of this site; add it in the admin", "Origin")
