"""Connector secrets, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key is ``ENCRYPTION_KEY`` when set (any string; a Fernet key is used as is),
else derived from ``SECRET_KEY``. Changing it makes stored secrets unreadable:
:class:`SecretsUnreadable` then asks the admin to enter them again.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from cryptography.fernet import Fernet, InvalidToken

_CONTEXT = b"personalize connector secrets v1"


class SecretsUnreadable(Exception):
    """The stored secrets cannot be decrypted with the current key."""


def _fernet(key_material: str) -> Fernet:
    if not key_material:
        raise ValueError("no ENCRYPTION_KEY or SECRET_KEY to encrypt connector secrets with")
    try:
        return Fernet(key_material.encode())
    except ValueError:
        pass  # not a Fernet key itself: derive one
    digest = hashlib.pbkdf2_hmac("sha256", key_material.encode(), _CONTEXT, 100_000)
    return Fernet(base64.urlsafe_b64encode(digest))


_cache: dict[str, Fernet] = {}


def fernet_for(config: dict[str, Any]) -> Fernet:
    material = config.get("ENCRYPTION_KEY") or config.get("SECRET_KEY") or ""
    if material not in _cache:
        _cache[material] = _fernet(material)
    return _cache[material]


def encrypt(config: dict[str, Any], values: dict[str, Any]) -> str:
    if not values:
        return ""
    return fernet_for(config).encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt(config: dict[str, Any], token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        return json.loads(fernet_for(config).decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable(
            "the stored secrets cannot be decrypted (ENCRYPTION_KEY or SECRET_KEY changed?); enter them again"
        ) from None


#: what a hidden value becomes in messages, logs and pages
HIDDEN = "[hidden]"
#: shorter values are not hidden: they would blank ordinary words ("expired"), and no real credential is that short
MIN_HIDDEN_LENGTH = 8


def secret_values(config: dict[str, Any], token: str) -> list[str]:
    """The plain values of a connection's stored secrets (none when they cannot be read)."""
    try:
        values = decrypt(config, token)
    except SecretsUnreadable:
        return []
    # keys starting with "__" are bookkeeping kept with the secrets (the address they were saved for), not secrets
    return [str(v) for k, v in values.items() if v not in (None, "") and not str(k).startswith("__")]


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with every one of ``values`` (and its URL-encoded form) replaced by ``[hidden]``.

    Providers sometimes quote the credential they refused in an error body, and
    errors carry those bodies; nothing that reaches a log, the run log or a page
    may repeat a secret.
    """
    if not text:
        return text
    for value in sorted({v for v in values if v and len(v) >= MIN_HIDDEN_LENGTH}, key=len, reverse=True):
        for form in {value, quote(value, safe=""), quote_plus(value)}:
            text = text.replace(form, HIDDEN)
    return text
