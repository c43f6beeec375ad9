"""Loading the demo into a server: site, catalogue, visitor history, model and an admin account.

:func:`build_demo` goes through the same services a real shop's data does (sites,
catalogue upsert, event ingestion, training), so the demo exercises the real path.
Running it again changes nothing: the site is found by name, products are upserted
and event ids are deterministic, so ingestion stores each event once.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from flask import Flask

from personalize.demo.catalog import demo_products
from personalize.demo.traffic import demo_events

DEMO_SITE_NAME = "Demo shop"
ADMIN_EMAIL = "admin@demo.shop"
ADMIN_FILE = "demo-admin.txt"
BATCH = 500
BEST_SELLERS = 8
# Where `personalize demo` and `flask run` serve by default; the caller may add its own.
DEFAULT_ORIGINS = (
    "http://127.0.0.1:8000",
    "http://localhost:8000",
    "http://127.0.0.1:5000",
    "http://localhost:5000",
)

Progress = Callable[[str, int, int], None]


def _read_password(path: Path) -> str | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "password" and value.strip():
            return value.strip()
    return None


def _write_password(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# The demo admin account, kept so `personalize demo` can print it again.\nemail={ADMIN_EMAIL}\npassword={password}\n"
    )
    path.chmod(0o600)


def ensure_demo_admin(instance_path: str) -> str | None:
    """Create the demo admin if missing; return its password (None if it exists but its file is gone)."""
    from personalize.admin.users import create_admin_user, get_admin_user

    path = Path(instance_path) / ADMIN_FILE
    password = _read_password(path)
    if get_admin_user(ADMIN_EMAIL) is not None:
        return password
    if password is None:
        password = secrets.token_urlsafe(12)
        _write_password(path, password)
    create_admin_user(ADMIN_EMAIL, password, role="owner")
    return password


def best_sellers(events: Iterable[dict], in_stock: set[str], k: int = BEST_SELLERS) -> list[str]:
    """The ``k`` available products sold most often in ``events`` (ties by id)."""
    sold: Counter[str] = Counter()
    for event in events:
        if event["type"] == "order_completed":
            for item in event["items"]:
                sold[item["product_id"]] += item["quantity"]
    ranked = sorted((pid for pid in sold if pid in in_stock), key=lambda pid: (-sold[pid], pid))
    return ranked[:k]


def build_demo(
    app: Flask,
    n_visitors: int = 3000,
    seed: int = 7,
    progress: Progress | None = None,
    origin: str | None = None,
    origins: Iterable[str] = (),
) -> dict:
    """Create (or refresh) the demo site in ``app``'s database and train its model.

    ``progress(stage, done, total)`` is called as the work goes on; stages are
    ``site``, ``products``, ``events``, ``train``, ``traffic``, ``customers``, ``journeys`` and ``admin``. ``origin`` (the
    address the demo is served on) and ``origins`` join the site's allowed origins.
    Sets ``DEMO_SITE_ID``, ``DEMO_PUBLIC_KEY`` and ``DEMO_BEST_SELLERS`` in ``app.config``.
    """
    from personalize.catalog import upsert_products
    from personalize.db import db
    from personalize.profiles import ingest_events
    from personalize.recommend.service import latest_version, train_site
    from personalize.sites import (
        create_site,
        get_site_by_name,
        normalise_origin,
        set_allowed_origins,
    )

    say = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    with app.app_context():
        started = time.perf_counter()
        say("site", 0, 1)
        wanted = [*DEFAULT_ORIGINS, *app.config.get("DEMO_ORIGINS", ()), *origins]
        if origin:
            wanted.append(origin)
        wanted = [normalise_origin(o) for o in wanted]
        site = get_site_by_name(DEMO_SITE_NAME)
        secret_key = None
        if site is None:
            site, secret_key = create_site(DEMO_SITE_NAME, allowed_origins=wanted)
        elif not set(wanted) <= set(site.allowed_origins or ()):
            set_allowed_origins(site, [*(site.allowed_origins or ()), *wanted])
        site_id, public_key = site.id, site.public_key
        say("site", 1, 1)

        products = demo_products(seed)
        say("products", 0, len(products))
        upsert_products(site_id, products)
        say("products", len(products), len(products))
        timings["products"] = time.perf_counter() - started

        mark = time.perf_counter()
        events = demo_events(products, n_visitors=n_visitors, seed=seed)
        timings["generate"] = time.perf_counter() - mark
        built_with = {"visitors": n_visitors, "seed": seed}
        # the same demo was built before: its events are stored and its model trained
        ready = (site.settings or {}).get("demo") == built_with and latest_version(site_id) is not None
        mark = time.perf_counter()
        stored = 0
        say("events", 0, len(events))
        if not ready:
            for start in range(0, len(events), BATCH):
                batch = events[start : start + BATCH]
                stored += ingest_events(site, batch).accepted
                say("events", start + len(batch), len(events))
        say("events", len(events), len(events))
        timings["ingest"] = time.perf_counter() - mark

        mark = time.perf_counter()
        say("train", 0, 1)
        if not ready:
            train_site(site_id)
            site = get_site_by_name(DEMO_SITE_NAME)
            site.settings = {**(site.settings or {}), "demo": built_with}
            db.session.commit()
        say("train", 1, 1)
        timings["train"] = time.perf_counter() - mark

        mark = time.perf_counter()
        say("traffic", 0, 1)
        traffic = simulate_demo_traffic(site_id, products, n_visitors, seed)
        say("traffic", 1, 1)
        timings["traffic"] = time.perf_counter() - mark

        mark = time.perf_counter()
        say("customers", 0, 1)
        customers = demo_customers(site_id, events, built_with)
        say("customers", 1, 1)
        timings["customers"] = time.perf_counter() - mark

        mark = time.perf_counter()
        say("journeys", 0, 1)
        from personalize.demo.journeys import simulate_demo_journeys

        journeys = simulate_demo_journeys(app, site_id, products, seed)
        say("journeys", 1, 1)
        timings["journeys"] = time.perf_counter() - mark

        say("admin", 0, 1)
        password = ensure_demo_admin(app.instance_path)
        say("admin", 1, 1)

        app.config["DEMO_SITE_ID"] = site_id
        app.config["DEMO_PUBLIC_KEY"] = public_key
        app.config["DEMO_BEST_SELLERS"] = best_sellers(
            events, {p.id for p in products if p.in_stock}
        )
        timings["total"] = time.perf_counter() - started

    return {
        "site_id": site_id,
        "public_key": public_key,
        "secret_key": secret_key,
        "admin_email": ADMIN_EMAIL,
        "admin_password": password,
        "events": len(events),
        "events_stored": stored,
        "traffic": traffic,
        "customers": customers,
        "journeys": journeys,
        "products": len(products),
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }


def demo_customers(site_id: int, events: list[dict], built_with: dict) -> dict:
    """Named customers with emails, the site's currency, segments and computed scores (see demo/people.py)."""
    from personalize.catalog.currency import ensure_site_currency
    from personalize.db import db
    from personalize.demo.people import create_demo_segments, customer_logins, score_demo
    from personalize.profiles import ingest_events
    from personalize.sites import get_site

    site = get_site(site_id)
    logins = customer_logins(events)
    for start in range(0, len(logins), BATCH):
        ingest_events(site, logins[start : start + BATCH])
    currency, _why, _new = ensure_site_currency(get_site(site_id))
    segments = create_demo_segments(site_id)
    site = get_site(site_id)
    scored = None
    if (site.settings or {}).get("demo_scores") != built_with or segments:
        scored = score_demo(site_id)["customers"]
        site = get_site(site_id)
        site.settings = {**(site.settings or {}), "demo_scores": built_with}
        db.session.commit()
    return {"named": len(logins), "currency": currency, "segments_created": segments, "scored": scored}


# Test and learn: a month of shoppers in front of the real recommendation lists, with a
# holdout, so the admin dashboard has impressions, clicks, attributed orders and a lift.
DEMO_HOLDOUT = 0.2
TRAFFIC_SHARE = 3  # one in this many demo visitors comes back during the simulated fortnight
TRAFFIC_VISITORS = 900
TRAFFIC_DAYS = 30  # the dashboard's longest view is 30 days: a month of traffic fills it


def simulate_demo_traffic(site_id: int, products, n_visitors: int, seed: int) -> dict | None:
    """Simulate recommendation traffic once per demo build (None when it was done already).

    The holdout is on while the shoppers are simulated and restored afterwards, so whoever
    tries the demo shop always sees their own personal row.
    """
    from personalize.db import db
    from personalize.demo.catalog import CURRENCY, category_slug
    from personalize.demo.traffic import demo_personas, persona_affinities
    from personalize.insights import holdout_share, set_holdout_share
    from personalize.insights.simulate import simulate_traffic
    from personalize.sites import get_site

    site = get_site(site_id)
    marker = {"visitors": n_visitors, "seed": seed}
    if (site.settings or {}).get("demo_traffic") == marker:
        return None
    before = holdout_share(site)
    set_holdout_share(site, DEMO_HOLDOUT)
    personas = demo_personas(n_visitors, seed)
    visitors = sorted(personas)[: min(TRAFFIC_VISITORS, max(1, n_visitors // TRAFFIC_SHARE))]
    counts = simulate_traffic(
        site,
        {v: persona_affinities(personas[v]) for v in visitors},
        {p.id: p.attributes.get("category_slug") or category_slug(p.category) or p.category for p in products},
        {p.id: p.price for p in products},
        days=TRAFFIC_DAYS, currency=CURRENCY, seed=seed,
    )
    site = get_site(site_id)
    set_holdout_share(site, before)
    # the dashboard explains the holdout the simulated traffic had (the site's own holdout is off again)
    site.settings = {**(site.settings or {}), "demo_traffic": marker, "demo_holdout": DEMO_HOLDOUT}
    db.session.commit()
    return counts
