"""Business rules an admin sets per site: pin, boost, bury and exclude products.

Rules live in the site's settings under ``rules``::

    {"pin": ["P1"], "boost": {"P2": 2.0}, "bury": ["P3"], "exclude": ["P4"]}

Pinned products lead the list (in the order given), boosted ones have their
score multiplied, buried ones go to the end, excluded ones never show.
"""

from __future__ import annotations

from personalize import hookimpl
from personalize.records import Recommendation

PIN_SCORE = 1e9


def _rules(site_id: int) -> dict:
    from personalize.sites import get_site

    site = get_site(site_id)
    return (site.settings or {}).get("rules", {}) if site is not None else {}


@hookimpl
def recommendation_candidates(site_id, profile_id, slot, product_id, limit):
    pins = _rules(site_id).get("pin") or []
    return [Recommendation(pid, PIN_SCORE - i, "Recommended by the shop", "pinned") for i, pid in enumerate(pins[:limit])]


@hookimpl
def modify_recommendations(site_id, profile_id, slot, items):
    rules = _rules(site_id)
    if not rules:
        return
    exclude = set(rules.get("exclude") or [])
    bury = set(rules.get("bury") or [])
    boost = rules.get("boost") or {}
    items[:] = [item for item in items if item.product_id not in exclude]
    lowest = min((item.score for item in items), default=0.0)
    for item in items:
        if item.product_id in boost and item.score < PIN_SCORE / 2:
            item.score *= float(boost[item.product_id])
        if item.product_id in bury:
            item.score = lowest - 1.0 - abs(item.score) * 1e-6
