"""Helpers shared by the journeys tests."""

from __future__ import annotations

import contextlib
import time

from personalize.journeys.email import save_settings
from personalize.journeys.store import create_journey, set_status
from personalize.profiles import ingest_events, set_attributes
from personalize.profiles.identity import EMAIL, VISITOR, lookup

T0 = int(time.time() * 1000) - 3_600_000


@contextlib.contextmanager
def notifications_lost(app):
    """Inside: what is stored reaches no journey (the process dies between a commit and its
    notification); the journeys' listener is back afterwards."""
    registry = app.extensions["personalize.plugins"]
    listener = registry.pm.get_plugin("personalize.journeys.listener")
    registry.pm.unregister(listener)
    try:
        yield
    finally:
        registry.pm.register(listener, name="personalize.journeys.listener")


def mail_settings(app, site_id: int, smtp_server, **extra) -> None:
    values = {
        "smtp_host": smtp_server.hostname, "smtp_port": smtp_server.port, "smtp_security": "none",
        "from_email": "shop@shop.example", "from_name": "The Shop", "shop_url": "https://shop.example",
        "server_url": "https://reco.shop.example", "timezone": "UTC", "consent": "opt_in",
    }
    values.update(extra)
    save_settings(site_id, values, app.config)


def customer(site, visitor: str, email: str | None, consent: bool | None = True, customer_id: str | None = None, **attrs) -> int:
    """A known customer with a visitor id (and an email, and consent) — returns the profile id."""
    events = [{"id": f"{visitor}-seen", "type": "page_viewed", "visitor": visitor, "ts": T0}]
    if email or customer_id:
        who = {k: v for k, v in (("email", email), ("customer_id", customer_id)) if v}
        events.append({"id": f"{visitor}-id", "type": "identify", "visitor": visitor, **who, "ts": T0 + 1})
    ingest_events(site, events)
    pid = lookup(site.id, VISITOR, [visitor])[visitor]
    if email:
        assert lookup(site.id, EMAIL, [email]).get(email) == pid
    values = dict(attrs)
    if consent is not None:
        values["email_consent"] = consent
    if values:
        set_attributes(site.id, pid, values, "test")
    return pid


def journey(site_id: int, key: str, definition: dict, activate: bool = True, name: str | None = None):
    j = create_journey(site_id, key, name or key, definition)
    if activate:
        set_status(j, "active")
    return j


EMAIL_STEP = {
    "type": "email", "subject": "Hello {{ contact.first_name or 'there' }}",
    "html": "<p>Hi {{ contact.first_name }}!</p>{{ recommendations_block }}", "recommendations": 3,
}


def customers(site, n: int, prefix: str = "c") -> list[int]:
    """``n`` customers with an email and consent, made in one batch: their profile ids."""
    from personalize.db import db
    from personalize.segments.live import refresh_profiles

    events = []
    for i in range(n):
        events += [{"id": f"{prefix}{i}-seen", "type": "page_viewed", "visitor": f"{prefix}{i}-v", "ts": T0},
                   {"id": f"{prefix}{i}-id", "type": "identify", "visitor": f"{prefix}{i}-v", "email": f"{prefix}{i}@example.com", "ts": T0 + 1}]
    for start in range(0, len(events), 1000):
        ingest_events(site, events[start : start + 1000], max_events=1000)
    ids = lookup(site.id, VISITOR, [f"{prefix}{i}-v" for i in range(n)])
    pids = [ids[f"{prefix}{i}-v"] for i in range(n)]
    for pid in pids:
        set_attributes(site.id, pid, {"email_consent": True}, "test", commit=False)
    db.session.commit()
    refresh_profiles(site.id, pids)
    return pids
