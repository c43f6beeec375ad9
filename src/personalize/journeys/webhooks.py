"""Signed webhooks: a journey step POSTs JSON about one person to an address of the shop's choosing.

Each delivery carries

* ``X-Personalize-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with
  the site's webhook secret (the receiver recomputes it and compares in constant time,
  and refuses a ``t`` older than a few minutes);
* ``Idempotency-Key``: the same for every attempt of one step for one person, so a
  receiver that remembers keys acts once whatever happens to us;
* ``X-Personalize-Delivery``: the attempt number.

Requests go through :class:`personalize.sync.http.HttpClient`, the server's one
outbound path: a 408, 429 or 5xx is retried a few times at once, then the step is
tried again later with a growing delay (:mod:`personalize.journeys.runner`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from ..db import db
from ..models import utcnow
from .models import JourneySettings

SIGNATURE_HEADER = "X-Personalize-Signature"
TOLERANCE_SECONDS = 300
WEBHOOK_ANSWER_BYTES = 1_000_000  # a receiver's answer is read up to this much, then refused


def webhook_secret(site_id: int, config: Mapping[str, Any]) -> str:
    """The site's webhook signing secret (``whsec_…``), created and stored encrypted on first use."""
    from ..sync.secrets import decrypt, encrypt
    from .email import get_settings

    row = db.session.get(JourneySettings, site_id)
    if row is not None and row.webhook_secret:
        return str(decrypt(config, row.webhook_secret)["secret"])
    secret = "whsec_" + secrets.token_urlsafe(32)
    if row is None:
        row = get_settings(site_id)
        db.session.add(row)
    row.webhook_secret = encrypt(config, {"secret": secret})
    row.updated_at = utcnow()
    db.session.commit()
    return secret


def rotate_webhook_secret(site_id: int, config: Mapping[str, Any]) -> str:
    row = db.session.get(JourneySettings, site_id)
    if row is not None:
        row.webhook_secret = ""
        db.session.commit()
    return webhook_secret(site_id, config)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time() if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str | None, now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does (shown here for tests and Python receivers)."""
    if not header or not header.isascii():
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def payload(key: str, journey: dict[str, Any], step: str, person: dict[str, Any], data: dict[str, Any], fields: dict[str, Any]) -> bytes:
    body = {
        "id": key, "type": "journey.step", "created_at": utcnow().isoformat(timespec="seconds") + "Z",
        "journey": journey, "step": step, "profile": person, "data": data, "fields": fields,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()


def client(config: Mapping[str, Any]):
    """The HTTP client deliveries go through: short timeouts and a few quick retries; the step
    itself is retried later when these are spent. The server's outbound address policy applies:
    public hosts over https, plus what the operator trusts in ``OUTBOUND_ALLOWED_HOSTS``."""
    from ..sync.http import HttpClient
    from ..sync.outbound import SETTING, OutboundPolicy, parse_allowed_hosts

    policy = OutboundPolicy(provider="webhook", trusted=parse_allowed_hosts(config.get(SETTING)))
    # only the status matters: an answer longer than WEBHOOK_ANSWER_BYTES is refused as it arrives, never held whole;
    # a delivery (its quick retries included) ends within JOURNEY_WEBHOOK_SECONDS however slowly the receiver answers
    seconds = float(config.get("JOURNEY_WEBHOOK_SECONDS") or 20)
    return HttpClient(timeout=(5.0, 15.0), max_retries=2, backoff=0.5, max_backoff=2.0, max_wait=4.0, policy=policy,
                      max_bytes=WEBHOOK_ANSWER_BYTES, deadline=seconds)


def deliver(http, url: str, body: bytes, secret: str, key: str, attempt: int) -> tuple[int, str]:
    """POST one delivery; returns the status and a note. A 2xx answer longer than
    :data:`WEBHOOK_ANSWER_BYTES` is delivered (the receiver took it; its answer is not read), with
    a note. Raises the client's errors (TransientError, including a receiver slower than the deadline,
    AuthError, HttpStatusError) for the caller to classify."""
    from ..sync.http import ResponseTooLarge

    headers = {
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body), "Idempotency-Key": key,
        "X-Personalize-Delivery": str(attempt),
    }
    try:
        response = http.request("POST", url, data=body, headers=headers)
    except ResponseTooLarge as exc:
        return exc.status, f"delivered; the receiver's answer was longer than {exc.limit:,} bytes and was not read"
    return response.status_code, ""
