"""Trusted identity signals: a shop's HMAC signature of an identity, and signed click-through tokens.

A browser may *claim* any email; only a proof lets personalize merge the browsing
history of an anonymous visitor into a known customer's profile:

* **signature** — the shop's server computes
  ``hex(HMAC-SHA256(signing_secret, identity_message(email, customer_id)))`` for the
  logged-in customer and puts it in the page; the widget sends it with ``identify``.
* **token** — a link in an email carries a token made by :func:`make_token`
  (``POST /api/v1/profiles/tokens``); it names the person and expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from ..db import db, insert_ignoring_conflicts
from ..models import utcnow
from .contact_tokens import PREFIX, ContactToken, expiry, seal, unseal
from .models import SigningSecret

TOKEN_TTL_SECONDS = 30 * 86400


def identity_message(email: str | None, customer_id: str | None) -> bytes:
    """The exact bytes a signature covers: ``email=<email>&customer_id=<id>`` (missing parts empty).

    The email is the trimmed, lower-cased address the API stores.
    """
    return f"email={(email or '').strip().lower()}&customer_id={customer_id or ''}".encode()


def signing_secret(site_id: int) -> str:
    """The site's signing secret, created on first use."""
    secret = db.session.scalar(select(SigningSecret.secret).where(SigningSecret.site_id == site_id))
    if secret is None:
        insert_ignoring_conflicts(SigningSecret, [{"site_id": site_id, "secret": "ss_" + secrets.token_hex(24), "created_at": utcnow()}], ["site_id"])
        db.session.commit()
        secret = db.session.scalar(select(SigningSecret.secret).where(SigningSecret.site_id == site_id))
    return secret


def rotate_signing_secret(site_id: int) -> str:
    row = db.session.get(SigningSecret, site_id)
    if row is None:
        return signing_secret(site_id)
    row.secret, row.created_at = "ss_" + secrets.token_hex(24), utcnow()
    db.session.commit()
    return row.secret


def sign_identity(secret: str, email: str | None, customer_id: str | None) -> str:
    """What a shop's server computes (shown here for tests and for Python shops)."""
    return hmac.new(secret.encode(), identity_message(email, customer_id), hashlib.sha256).hexdigest()


def signature_valid(site_id: int, email: str | None, customer_id: str | None, signature: str | None) -> bool:
    if not signature or not (email or customer_id) or not signature.isascii():  # hex, so ASCII; compare_digest refuses other text
        return False
    expected = sign_identity(signing_secret(site_id), email, customer_id)
    return hmac.compare_digest(expected, signature.strip().lower())


@dataclass(frozen=True)
class TokenIdentity:
    email: str | None
    customer_id: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(site_id: int, email: str | None = None, customer_id: str | None = None, ttl: int = TOKEN_TTL_SECONDS, now: float | None = None) -> str:
    """A click-through token naming a person, valid for ``ttl`` seconds."""
    if not (email or customer_id):
        raise ValueError("a token names an email or a customer id")
    payload = {"s": site_id, "e": (email or "").strip().lower() or None, "c": customer_id or None, "x": int((now or time.time()) + ttl)}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(signing_secret(site_id).encode(), b"token:" + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def read_token(site_id: int, token: str | None, now: float | None = None) -> TokenIdentity | None:
    """The person a valid, unexpired token of this site names; ``None`` otherwise.

    Takes the sealed tokens of :mod:`personalize.profiles.contact_tokens` too (the links of
    the email block): they name a profile, whose email and customer id are read here."""
    if isinstance(token, str) and token.startswith(PREFIX):
        sealed = read_site_token(site_id, token, None, now)
        return None if sealed is None else _profile_identity(site_id, sealed.profile_id)
    if not token or token.count(".") != 1 or len(token) > 1000 or not token.isascii():  # base64url, so ASCII
        return None
    body, mac = token.split(".")
    expected = hmac.new(signing_secret(site_id).encode(), b"token:" + body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or payload.get("s") != site_id or payload.get("x", 0) < (now or time.time()):
        return None
    return TokenIdentity(payload.get("e"), payload.get("c"))


def _profile_identity(site_id: int, profile_id: int) -> TokenIdentity | None:
    """The email and customer id of a profile (or of the one it was merged into)."""
    from ..models import Identity
    from .merge import resolve_profile_id

    live = resolve_profile_id(site_id, profile_id)
    if live is None:
        return None
    found: dict[str, str] = {}
    for kind, value in db.session.execute(
        select(Identity.kind, Identity.value).where(Identity.site_id == site_id, Identity.profile_id == live,
                                                    Identity.kind.in_(("email", "customer_id"))).order_by(Identity.id)
    ):
        found.setdefault(kind, value)
    if not found:
        return None
    return TokenIdentity(found.get("email"), found.get("customer_id"))


# ---------------------------------------------------------------- sealed tokens with the site's secret


def site_token(site_id: int, profile_id: int, ttl_seconds: int, purpose: str = "email", now: float | None = None) -> str:
    """:func:`personalize.profiles.contact_tokens.seal` with the site's own signing secret (created on first use)."""
    return seal(signing_secret(site_id), site_id, purpose, profile_id, expiry(ttl_seconds, now))


def read_site_token(site_id: int, token: str, purpose: str | None = "email", now: float | None = None) -> ContactToken | None:
    """:func:`personalize.profiles.contact_tokens.unseal` with the site's signing secret; ``None`` for a site that does not exist."""
    from ..models import Site

    if not isinstance(token, str) or not token.startswith(PREFIX) or not isinstance(site_id, int) or not 0 < site_id < 2**31:
        return None
    if db.session.get(Site, site_id) is None:
        return None
    return unseal(signing_secret(site_id), site_id, token, purpose, now)
