"""Asking for a person's list by ``customer_id`` or ``email``: server to server, secret key only.

A widget knows its visitor id; a server (an email tool, a CRM, the shop's own back end)
knows the person. ``GET /api/v1/recommendations`` takes either, but looking people up by
email or customer id is refused to a public key: the public key is in every page, and
whoever reads it must not be able to learn what someone else looked at.
"""

from __future__ import annotations

import re

from flask import request

from ..journeys.email import EMAIL_RE
from ..profiles.identity import CUSTOMER, EMAIL, VISITOR
from ..shapes import Text
from ..validation import InvalidInput
from .errors import ApiError

PERSON_FIELDS = ("customer_id", "email")


def _email(value: str, field: str) -> str:
    value = value.strip()
    if not EMAIL_RE.match(value):
        raise InvalidInput(field, "must be an email address such as ana@example.com")
    return value.lower()


def _customer_id(value: str, field: str) -> str:
    value = value.strip()
    if not value.isprintable():
        raise InvalidInput(field, "must be at most 200 printable characters")
    return value


# what the description shows is the plain form (any printable text is read; spaces around it are dropped)
PERSON = {
    "customer_id": Text(200, check=_customer_id, pattern=re.compile(r"^[!-~]([ -~]*[!-~])?$")),
    "email": Text(320, check=_email, pattern=EMAIL_RE),
}


def opened_with_secret_key() -> bool:
    """Whether this request authenticated with ``Authorization: Bearer sk_…`` (and no public key)."""
    if request.args.get("key") or request.headers.get("X-Personalize-Key"):
        return False
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and key.strip().startswith("sk_")


def person_param(visitor: str | None) -> tuple[str | None, str]:
    """``(identity value, identity kind)`` the list is for: the widget's ``visitor``, or, with a
    secret key, a ``customer_id`` or ``email``. Refuses (4xx naming the field) a person field sent
    with a public key, more than one of them, and malformed values."""
    given = [name for name in PERSON_FIELDS if request.args.get(name) not in (None, "")]
    if not given:
        return visitor, VISITOR
    name = given[0]
    if not opened_with_secret_key():
        raise ApiError(403, "secret_key_required", f"{name} looks a person up: only a server may, with its secret key "
                       "(Authorization: Bearer sk_…); a page sends its visitor id instead", name)
    if len(given) > 1 or visitor:
        raise ApiError(400, "invalid", "give one of visitor, customer_id or email, not several", name)
    value = PERSON[name].read(request.args, name, "")
    return value, EMAIL if name == "email" else CUSTOMER
