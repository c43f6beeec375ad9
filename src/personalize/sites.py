"""Sites (shops) and their keys.

A site has one public key (``pk_…``), safe to put in a page, which can only send
events and read recommendations; and any number of secret keys (``sk_…``) for
server-to-server calls, stored as SHA-256 hashes and shown once when created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from sqlalchemy import bindparam, select

from .db import db
from .models import ApiKey, Site, utcnow
from .validation import whole_number


class SiteError(ValueError):
    """A site setting that cannot be accepted; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def normalise_origin(origin: str) -> str:
    """``https://Shop.example:443/path`` → ``https://shop.example``; raise SiteError if not an origin."""
    text = origin.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SiteError("allowed_origins", f"{origin!r} is not an origin like https://shop.example")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        raise SiteError("allowed_origins", f"{origin!r} has an invalid port") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def clean_site_name(name: str) -> str:
    """``name`` without surrounding blanks; raise SiteError if it is empty or too long."""
    name = (name or "").strip()
    if not name:
        raise SiteError("name", "a site needs a name")
    if len(name) > 200:
        raise SiteError("name", "a site name has at most 200 characters")
    return name


def create_site(name: str, allowed_origins: Iterable[str] = ()) -> tuple[Site, str]:
    """Create a site with a new public key and one secret key; return both (the secret only here).

    Names need not be unique: whoever creates a site checks it against the sites *they*
    can see (:func:`sites_named`), so a name never tells anyone about other tenants' sites.
    """
    name = clean_site_name(name)
    site = Site(
        name=name,
        public_key="pk_" + secrets.token_urlsafe(18),
        allowed_origins=sorted({normalise_origin(o) for o in allowed_origins}),
        settings={},
    )
    db.session.add(site)
    db.session.flush()
    secret = add_secret_key(site, label="default")
    db.session.commit()
    return site, secret


def add_secret_key(site: Site, label: str = "") -> str:
    """Add a secret key to ``site`` and return it in plain text (it is not stored so)."""
    key = "sk_" + secrets.token_urlsafe(30)
    db.session.add(ApiKey(site_id=site.id, prefix=key[:10], key_hash=_hash(key), label=label))
    db.session.flush()
    return key


def rotate_secret_keys(site: Site) -> str:
    """Revoke every secret key of ``site`` and return a new one."""
    now = utcnow()
    for key in db.session.scalars(select(ApiKey).where(ApiKey.site_id == site.id, ApiKey.revoked_at.is_(None))):
        key.revoked_at = now
    secret = add_secret_key(site, label="rotated")
    db.session.commit()
    return secret


def set_allowed_origins(site: Site, origins: Iterable[str]) -> None:
    site.allowed_origins = sorted({normalise_origin(o) for o in origins if o.strip()})
    db.session.commit()


def get_site(site_id: int) -> Site | None:
    return db.session.get(Site, site_id)


def get_site_by_name(name: str) -> Site | None:
    """The oldest site called ``name`` (names are not unique: see :func:`sites_named`)."""
    return db.session.scalar(select(Site).where(Site.name == name).order_by(Site.id).limit(1))


def sites_named(name: str, among: Iterable[int] | None = None) -> list[Site]:
    """The sites called exactly ``name``, oldest first; with ``among``, only those of these ids."""
    q = select(Site).where(Site.name == (name or "").strip()).order_by(Site.id)
    if among is not None:
        q = q.where(Site.id.in_(list(among) or [-1]))
    return list(db.session.scalars(q))


def list_sites() -> list[Site]:
    return list(db.session.scalars(select(Site).order_by(Site.id)))


_BY_PUBLIC_KEY = select(Site).where(Site.public_key == bindparam("key"))  # built once: every widget call asks


def site_for_public_key(key: str) -> Site | None:
    if not key or not key.startswith("pk_") or len(key) > 64:
        return None
    site = db.session.scalar(_BY_PUBLIC_KEY, {"key": key})
    # the lookup is by value; compare again in constant time so timing says nothing
    if site is not None and hmac.compare_digest(site.public_key, key):
        return site
    return None


def site_for_secret_key(key: str) -> Site | None:
    """The site a live secret key belongs to, or ``None`` (unknown or revoked)."""
    if not key or not key.startswith("sk_") or len(key) > 128:
        return None
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == _hash(key)))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    return db.session.get(Site, row.site_id)


def resolve_site(ref: str) -> Site | None:
    """A site by id, name or public key — what CLI commands accept as SITE.

    ``None`` if nothing matches. A name that several sites share raises :class:`SiteError`
    naming their ids, so a command never picks one of them by chance.
    """
    ref = (ref or "").strip()
    if whole_number(ref) is not None:
        return get_site(whole_number(ref))
    if ref.startswith("pk_"):
        return site_for_public_key(ref)
    named = sites_named(ref)
    if len(named) > 1:
        ids = ", ".join(str(s.id) for s in named)
        raise SiteError("site", f"{_count_word(len(named))} sites are named {ref!r} (ids {ids}): give the id")
    return named[0] if named else None


def _count_word(n: int) -> str:
    return {2: "two", 3: "three", 4: "four", 5: "five"}.get(n, str(n))


def secret_key_prefixes(site: Site) -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).where(ApiKey.site_id == site.id).order_by(ApiKey.id)))
