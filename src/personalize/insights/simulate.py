"""Simulated shoppers in front of the real recommendations, for the demo and for trials.

Each simulated visit asks :func:`personalize.recommend.service.recommend_for` for a real
list (so the holdout decides who gets best sellers), and the shopper reacts to what they
are shown: the more a product matches their taste, the likelier a click, and the likelier
that the click leads to an add-to-cart and an order. Events carry the ``rec_id`` exactly as the widget
sends them and go in through the real ingestion. Nothing favours either group by
construction: personalized lists earn more only because they show shoppers more of what
they like.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from ..models import Site
from ..profiles import ingest_events

BATCH = 500
BASE_CLICK = 0.01  # a product of no interest to the shopper
TASTE_CLICK = 0.25  # added for a product of the shopper's only interest
BASE_ADD = 0.10  # a click turns into an add-to-cart this often, plus TASTE_ADD × interest
TASTE_ADD = 0.45
BUY_AFTER_ADD = 0.6
ORGANIC_ORDER = 0.02  # orders a shopper makes without any recommendation, per visit
DAY = 86_400.0


def simulate_traffic(
    site: Site,
    tastes: Mapping[str, Mapping[str, float]],
    category_of: Mapping[str, str],
    price_of: Mapping[str, float],
    *,
    days: int = 14,
    visits: int = 2,
    slot: str = "home",
    limit: int = 8,
    currency: str = "",
    seed: int = 7,
    now: float | None = None,
) -> dict[str, int]:
    """Simulate ``visits`` visits per shopper over the last ``days`` days and store their events.

    ``tastes``: visitor id → {category: share of interest}; ``category_of`` and ``price_of``:
    product id → category, price. Returns counts of what was sent.
    """
    rng = random.Random(seed)
    now = time.time() if now is None else now
    from ..recommend.service import recommend_for

    events: list[dict] = []
    counts = {"visits": 0, "impressions": 0, "clicks": 0, "carts": 0, "orders": 0, "organic_orders": 0}
    liked_products: dict[str, list[str]] = {}
    for pid, cat in category_of.items():
        liked_products.setdefault(cat, []).append(pid)

    for visitor in sorted(tastes):
        taste = tastes[visitor]
        for visit in range(visits):
            at = now - rng.uniform(0, days) * DAY
            ms = int(at * 1000)
            key = f"sim{seed}-{visitor}-{visit}"
            shown = recommend_for(site, visitor, slot=slot, limit=limit)
            counts["visits"] += 1
            if not shown.items:
                continue
            ids = [item["id"] for item in shown.items]
            events.append({"id": f"{key}-i", "type": "rec_impression", "visitor": visitor, "ts": ms, "rec_id": shown.rec_id,
                           "slot": slot, "strategy": shown.strategy, "items": ids})
            counts["impressions"] += 1
            clicked = 0
            for position, pid in enumerate(ids, start=1):
                chance = (BASE_CLICK + TASTE_CLICK * taste.get(category_of.get(pid, ""), 0.0)) / (1 + 0.25 * (position - 1))
                if clicked >= 2 or rng.random() >= chance:
                    continue
                clicked += 1
                t = ms + 2000 * clicked
                base = {"visitor": visitor, "rec_id": shown.rec_id, "slot": slot}
                events.append({"id": f"{key}-c{position}", "type": "rec_clicked", "ts": t, "product_id": pid,
                               "position": position, "strategy": shown.strategy, **base})
                events.append({"id": f"{key}-v{position}", "type": "product_viewed", "ts": t + 500, "product_id": pid,
                               "position": position, **base})
                counts["clicks"] += 1
                if rng.random() >= BASE_ADD + TASTE_ADD * taste.get(category_of.get(pid, ""), 0.0):
                    continue
                price = float(price_of.get(pid) or 0.0)
                events.append({"id": f"{key}-a{position}", "type": "product_added", "ts": t + 30_000, "product_id": pid,
                               "quantity": 1, "price": price, "position": position, **base})
                counts["carts"] += 1
                if rng.random() >= BUY_AFTER_ADD:
                    continue
                events.append({"id": f"{key}-o{position}", "type": "order_completed", "visitor": visitor, "ts": t + 120_000,
                               "order_id": f"{key}-o{position}", "rec_id": shown.rec_id, "currency": currency or None,
                               "revenue": price, "items": [{"product_id": pid, "quantity": 1, "price": price}]})
                counts["orders"] += 1
            if taste and rng.random() < ORGANIC_ORDER:  # bought on their own, no recommendation involved
                favourite = max(taste, key=taste.get)
                pid = rng.choice(sorted(liked_products.get(favourite) or category_of))
                price = float(price_of.get(pid) or 0.0)
                events.append({"id": f"{key}-own", "type": "order_completed", "visitor": visitor, "ts": ms + 600_000,
                               "order_id": f"{key}-own", "currency": currency or None, "revenue": price,
                               "items": [{"product_id": pid, "quantity": 1, "price": price}]})
                counts["organic_orders"] += 1
    for event in events:
        if event.get("currency") is None:
            event.pop("currency", None)
    events.sort(key=lambda e: e["ts"])
    for start in range(0, len(events), BATCH):
        ingest_events(site, events[start : start + BATCH])
    counts["events"] = len(events)
    return counts
