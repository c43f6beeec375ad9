"""The demo's customers as a shop owner would see them: named, with emails, in segments, scored.

Visitors who ordered log in (an ``identify`` event with their email and name, as a shop's
login page would send it), a few rule segments are created the way an owner would build
them in the admin, and the computed scores (RFM, value, attrition, purchase propensity) are
calculated, so the demo's profiles, segments and dashboard open full instead of empty.

Everything goes through the real services (event ingestion, the segment store, the score
job), with deterministic ids: building the demo again changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

FIRST_NAMES = (
    "Ada", "Ben", "Chloé", "Dmitri", "Elif", "Finn", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Luca", "Maya",
    "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sam", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe",
)
LAST_NAMES = (
    "Andersen", "Baker", "Costa", "Dubois", "Eriksson", "Fischer", "García", "Hughes", "Ivanova", "Jensen", "Kowalski",
    "Laine", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Urban", "Varga",
    "Weber", "Young", "Zhang",
)
EMAIL_DOMAIN = "example.com"  # reserved for examples: no demo email can reach a real person

#: the segments an owner of the demo shop might build first (the admin's segment builder makes the same rules)
DEMO_SEGMENTS = (
    {"key": "big-spenders", "name": "Big spenders", "description": "Customers who spent more than €400 in all.",
     "rule": {"field": "orders.total", "op": "gt", "value": 400}},
    {"key": "repeat-customers", "name": "Repeat customers", "description": "Ordered at least twice.",
     "rule": {"field": "orders.count", "op": "gte", "value": 2}},
    {"key": "coffee-lovers", "name": "Coffee lovers", "description": "Viewed Coffee & Tea products at least three times in the last 30 days.",
     "rule": {"behaviour": {"event": "product_viewed", "category": "Coffee & Tea", "within_days": 30, "min": 3}}},
    {"key": "likely-to-order", "name": "Likely to order soon", "description": "At least a 20 % chance of ordering in the next 30 days.",
     "rule": {"field": "scores.order_propensity", "op": "gte", "value": 0.2}},
    {"key": "slipping-away", "name": "Slipping away", "description": "Customers whose attrition score says they are likely gone.",
     "rule": {"and": [{"field": "orders.count", "op": "gte", "value": 1}, {"field": "scores.attrition", "op": "gte", "value": 0.5}]}},
)


def customer_logins(events: Iterable[dict], seed: int = 7) -> list[dict]:
    """One ``identify`` event per visitor who ordered: their email and name, just after their first order."""
    first_order: dict[str, int] = {}
    for event in events:
        if event["type"] == "order_completed" and event["visitor"] not in first_order:
            first_order[event["visitor"]] = event["ts"]
    rng = random.Random(seed * 31 + 5)
    out = []
    for number, visitor in enumerate(sorted(first_order), 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().translate(str.maketrans("éíóúáçñ", "eiouacn"))
        out.append({
            "id": f"{visitor}-login", "type": "identify", "visitor": visitor, "ts": first_order[visitor] + 1000,
            "email": f"{local}.{number}@{EMAIL_DOMAIN}",
            "traits": {"first_name": first, "last_name": last, "name": f"{first} {last}"},
        })
    return out


def create_demo_segments(site_id: int) -> list[str]:
    """Create the demo's segments that do not exist yet; their keys."""
    from personalize.segments.store import create_segment, get_segment

    made = []
    for body in DEMO_SEGMENTS:
        if get_segment(site_id, body["key"]) is None:
            create_segment(site_id, dict(body))
            made.append(body["key"])
    return made


def score_demo(site_id: int) -> dict:
    """Compute every customer's scores and rebuild every segment (what the scheduler does daily)."""
    from personalize.segments.scores import compute_scores

    return compute_scores(site_id)
