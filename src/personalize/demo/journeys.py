"""Three live journeys for the demo shop, with a week of simulated history.

Most demo shoppers get an email address and consent; then the last week of their
history are replayed through the real journey engine on a simulated clock (the
triggers' handlers and the step runner both take ``now``): cart abandonment, post-purchase
cross-sell and browse abandonment enter people as their events happened, wait, branch
and "send" their emails. The demo site's email settings record messages instead of sending
them (nothing leaves the machine). A share of the people an email reached come back and
order within two days (the journey's simulated effect, bigger for a cart reminder);
the control groups get no email and no such orders, so each report shows a lift with
its interval. The journeys stay active: ``personalize demo`` runs their clock.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

JOURNEYS = ("cart-abandonment", "post-purchase", "browse-abandonment")
DAYS = 7
TICK = timedelta(hours=1)
EMAIL_SHARE = 0.6  # demo shoppers who told us their email and said yes to marketing
RESPONSE = {"cart-abandonment": 0.22, "post-purchase": 0.10, "browse-abandonment": 0.08}
CONTROL = 20  # per cent: a bigger control group than a shop would keep, so a week of demo history measures something


def simulate_demo_journeys(app, site_id: int, products, seed: int = 7, now: datetime | None = None) -> dict[str, Any] | None:
    """Create the demo's journeys and replay a week through them (once per demo; None when done already)."""
    from personalize.db import db
    from personalize.journeys.email import get_settings, save_settings
    from personalize.journeys.models import JourneySettings
    from personalize.journeys.store import get_journey, save_definition, set_status
    from personalize.journeys.templates import create_from_template
    from personalize.models import utcnow
    from personalize.sites import get_site

    site = get_site(site_id)
    if (site.settings or {}).get("demo_journeys"):
        return None
    now = now or utcnow()
    rng = random.Random(seed * 31 + 5)
    registry = app.extensions["personalize.plugins"]
    listener = registry.pm.get_plugin("personalize.journeys.listener")
    if listener is not None:  # the simulation drives the engine itself, on its own clock
        registry.pm.unregister(listener)
    try:
        people = _give_emails(site, rng)
        if db.session.get(JourneySettings, site_id) is None:
            current = get_settings(site_id)
            save_settings(site_id, {
                "delivery": "record", "timezone": "Europe/Berlin", "from_email": "hello@demo.shop.example", "from_name": "Demo shop",
                "shop_url": (site.allowed_origins or [""])[0], "server_url": app.config.get("PUBLIC_URL") or "", "consent": current.consent,
            }, app.config)
        for key in JOURNEYS:
            if get_journey(site_id, key) is None:
                journey, _segments = create_from_template(site_id, key)
                save_definition(journey, {**journey.definition, "control": CONTROL})
            set_status(get_journey(site_id, key), "active")
        counts = _replay(site_id, people, {p.id: p for p in products}, rng, now)
    finally:
        if listener is not None:
            registry.pm.register(listener, name="personalize.journeys.listener")
    site = get_site(site_id)
    site.settings = {**(site.settings or {}), "demo_journeys": {"days": DAYS, "seed": seed}}
    db.session.commit()
    return counts


def _give_emails(site, rng: random.Random) -> dict[int, str]:
    """Email consent for the demo's named customers, and a name and an email (``…@example.com``)
    with consent for about ``EMAIL_SHARE`` of the other shoppers: ``{profile id: visitor id}`` of
    everyone who may now be emailed."""
    from personalize.db import db
    from personalize.demo.people import EMAIL_DOMAIN, FIRST_NAMES, LAST_NAMES
    from personalize.models import Identity, Profile
    from personalize.profiles import ingest_events, set_attributes
    from personalize.profiles.identity import VISITOR
    from personalize.segments.live import refresh_profiles

    visitors = dict(db.session.execute(
        select(Identity.value, Identity.profile_id).where(Identity.site_id == site.id, Identity.kind == VISITOR).order_by(Identity.value)
    ).all())
    emailed = set(db.session.scalars(select(Profile.id).where(Profile.site_id == site.id, Profile.email.is_not(None))))
    chosen = [v for v in visitors if visitors[v] in emailed or rng.random() < EMAIL_SHARE]
    events = []
    for n, v in enumerate(chosen):
        if visitors[v] in emailed:  # named by the demo's customer logins already
            continue
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().translate(str.maketrans("éíóúáçñ", "eiouacn"))
        events.append({"id": f"{v}-identify", "type": "identify", "visitor": v, "email": f"{local}.s{n}@{EMAIL_DOMAIN}",
                       "ts": 1_700_000_000_000, "traits": {"first_name": first, "last_name": last, "name": f"{first} {last}"}})
    for start in range(0, len(events), 500):
        ingest_events(site, events[start : start + 500], max_events=500)
    for v in chosen:
        set_attributes(site.id, visitors[v], {"email_consent": True}, "demo", commit=False)
    db.session.commit()
    refresh_profiles(site.id, [visitors[v] for v in chosen])
    return {visitors[v]: v for v in chosen}


def _replay(site_id: int, people: dict[int, str], products: dict, rng: random.Random, now: datetime) -> dict[str, Any]:
    from personalize.db import db
    from personalize.journeys.batches import run_due
    from personalize.journeys.models import Journey, JourneyStep
    from personalize.journeys.triggers import on_events
    from personalize.models import Event
    from personalize.profiles import ingest_events
    from personalize.records import Event as EventRecord
    from personalize.sites import get_site

    start = now - timedelta(days=DAYS)
    rows = db.session.execute(
        select(Event.event_id, Event.type, Event.visitor, Event.profile_id, Event.occurred_at, Event.product_id, Event.properties)
        .where(Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < now,
               Event.type.in_(("product_viewed", "product_added", "order_completed")))
        .order_by(Event.occurred_at, Event.id)
    ).all()
    history = [EventRecord(site_id, r[0], r[1], r[2], r[3], r[4], r[5] or "", properties=r[6] or {}) for r in rows if r[3] in people]
    keys = dict(db.session.execute(select(Journey.id, Journey.key).where(Journey.site_id == site_id)).all())
    pending: list[tuple[datetime, dict, int]] = []  # simulated orders of people an email brought back
    seen_steps: set[int] = set()
    t, i, emails, orders = start, 0, 0, 0
    while t < now:
        t = min(t + TICK, now)
        batch = []
        while i < len(history) and history[i].occurred_at <= t:
            batch.append(history[i])
            i += 1
        due = sorted((p for p in pending if p[0] <= t), key=lambda p: p[0])
        pending = [p for p in pending if p[0] > t]
        if due:
            ingest_events(get_site(site_id), [e for _at, e, _pid in due])
            orders += len(due)
            batch += [EventRecord(site_id, e["id"], "order_completed", e["visitor"], pid, at, properties={"order_id": e["order_id"]})
                      for at, e, pid in due]
        if batch:
            on_events(site_id, batch, now=t, received={e.event_id: t for e in batch})
        nxt = db.session.scalar(select(func.min(JourneyStep.due_at)).where(JourneyStep.site_id == site_id, JourneyStep.state == "due"))
        while nxt is not None and nxt <= t and run_due(now=t).claimed:
            pass
        acted = db.session.execute(
            select(JourneyStep.id, JourneyStep.journey_id, JourneyStep.profile_id, JourneyStep.detail)
            .where(JourneyStep.site_id == site_id, JourneyStep.kind == "email", JourneyStep.outcome == "acted", JourneyStep.done_at == t)
        ).all()
        for step_id, journey_id, pid, detail in acted:
            if step_id in seen_steps:
                continue
            seen_steps.add(step_id)
            emails += 1
            if rng.random() < RESPONSE.get(keys.get(journey_id, ""), 0.0):
                pending.append(_response_order(pid, people[pid], detail or {}, products, t, rng))
        db.session.remove()
    return {"events_replayed": len(history), "emails": emails, "orders_from_emails": orders}


def _response_order(pid: int, visitor: str, detail: dict, products: dict, at: datetime, rng: random.Random) -> tuple[datetime, dict, int]:
    """An order a few hours to two days after an email, of something it showed."""
    shown = [p for p in detail.get("items") or [] if p in products and products[p].in_stock] or [p for p in products if products[p].in_stock][:20]
    picked = rng.sample(shown, k=min(len(shown), rng.choice((1, 1, 2))))
    when = at + timedelta(hours=rng.uniform(2, 44))
    ms = int((when - datetime(1970, 1, 1)).total_seconds() * 1000)
    order_id = f"{visitor}-journey-{ms}"
    items = [{"product_id": p, "quantity": 1, "price": products[p].price} for p in picked]
    return when, {"id": order_id, "type": "order_completed", "visitor": visitor, "ts": ms, "order_id": order_id, "items": items,
                  "revenue": round(sum(i["price"] or 0 for i in items), 2), "currency": "EUR"}, pid

