"""Sealed contact tokens: what a link or image address in an email carries instead of a person.

A token names one profile of one site for one purpose until it expires, and shows none of
it: the payload (purpose, profile id, expiry) is encrypted and authenticated with AES-SIV
(``cryptography``), under a key derived from the site's signing secret with HKDF-SHA256
(an HMAC construction). The site's id is bound in as associated data, so a token of one
site is refused by every other. The same payload always gives the same token (SIV is
deterministic; expiries are whole days), so an address pushed to an email provider does
not change at each sync. Rotating the signing secret voids every token at once.

The token is 40 URL-safe characters; nothing in it can be read without the key.
"""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: purposes a token may be made for (one byte of the sealed payload)
PURPOSES = {"email": 1}
_PURPOSE_NAMES = {v: k for k, v in PURPOSES.items()}
_LAYOUT = struct.Struct(">BQI")  # purpose, profile id, expiry (epoch seconds)
DAY = 86400
PREFIX = "pz1"  # tells a sealed token from the older signed ones (profiles/trust.py)


@dataclass(frozen=True)
class ContactToken:
    purpose: str
    profile_id: int
    expires: int


@lru_cache(maxsize=256)
def _cipher(secret: str) -> AESSIV:
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"personalize contact token v1").derive(secret.encode())
    return AESSIV(key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expiry(ttl_seconds: int, now: float | None = None) -> int:
    """The expiry of a token made now for ``ttl_seconds``: rounded up to the next whole day, so
    tokens made for the same person during one day are the same token."""
    at = int((now if now is not None else time.time()) + max(ttl_seconds, 60))
    return (at // DAY + 1) * DAY


def seal(secret: str, site_id: int, purpose: str, profile_id: int, expires: int) -> str:
    """A token naming ``profile_id`` of ``site_id`` for ``purpose`` until ``expires`` (epoch seconds)."""
    payload = _LAYOUT.pack(PURPOSES[purpose], int(profile_id), int(expires))
    return PREFIX + _b64(_cipher(secret).encrypt(payload, [b"site:%d" % site_id]))


def unseal(secret: str, site_id: int, token: str, purpose: str | None = None, now: float | None = None) -> ContactToken | None:
    """What a valid, unexpired token of this site says; ``None`` for anything else (forged, altered,
    expired, of another site or purpose, or not a token at all)."""
    if not isinstance(token, str) or not token.startswith(PREFIX) or not 20 < len(token) < 120 or not token.isascii():
        return None
    body = token[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        payload = _cipher(secret).decrypt(raw, [b"site:%d" % site_id])
        kind, profile_id, expires = _LAYOUT.unpack(payload)
    except (ValueError, InvalidTag, struct.error):
        return None
    name = _PURPOSE_NAMES.get(kind)
    if name is None or (purpose is not None and name != purpose) or profile_id <= 0:
        return None
    if expires < (now if now is not None else time.time()):
        return None
    return ContactToken(name, profile_id, expires)
