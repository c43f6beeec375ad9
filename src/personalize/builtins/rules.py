"""Business rules an admin sets per site, and per slot: pin, boost, bury, exclude, "bought A →
show B", and a weight per strategy.

Rules live in the site's settings under ``rules``::

    {"pin": ["P1"], "boost": {"P2": 2.0}, "bury": ["P3"], "exclude": ["P4"],
     "bought_show": {"P5": ["P6", "P7"]},
     "weights": {"popular": 0.5},
     "slots": {"product": {"exclude": ["P8"], "weights": {"personal": 2.0}}}}

Pinned products lead the list (in the order given); then the products a "bought A →
show B" rule names, for a visitor who bought A; boosted ones have their score
multiplied, buried ones go to the end, excluded ones never show. ``weights``
multiply the score of every item by the weight of the strategy that chose it
(``personal``, ``item-item``, ``content``, ``popular``, ``segment``); a weight of 0
drops that strategy's items. A slot's own rules add to the site-wide ones (lists and
maps are merged, the slot's values win), and so do the rules under ``"segments":
{"<segment key>": {...}}`` for a visitor in that segment.
"""

from __future__ import annotations

from personalize import hookimpl
from personalize.records import Recommendation

PIN_SCORE = 1e9
FOLLOW_SCORE = PIN_SCORE / 2 + 1e6  # "bought A → show B": after the pins, above everything scored
RULE_LISTS = ("pin", "bury", "exclude")
RULE_MAPS = ("boost", "bought_show", "weights")
STRATEGIES = ("personal", "item-item", "content", "popular", "segment")


def merge_rules(rules: dict, slot: str | None) -> dict:
    """The site-wide rules with ``slot``'s own rules added."""
    merged = {k: v for k, v in (rules or {}).items() if k != "slots"}
    own = ((rules or {}).get("slots") or {}).get(slot or "") or {}
    for key in RULE_LISTS:
        if own.get(key):
            merged[key] = list(dict.fromkeys([*(merged.get(key) or []), *own[key]]))
    for key in RULE_MAPS:
        if own.get(key):
            merged[key] = {**(merged.get(key) or {}), **own[key]}
    return merged


def _rules(site_id: int, slot: str | None = None, profile_id: int | None = None) -> dict:
    from personalize.sites import get_site

    site = get_site(site_id)
    if site is None:
        return {}
    rules = (site.settings or {}).get("rules", {})
    merged = merge_rules(rules, slot)
    from personalize.experiments.arms import current_arm_rules

    if arm := current_arm_rules():  # an experiment's arm adds its own rules, as a slot's add to the site's
        merged = merge_rules({**merged, "slots": {"": arm}}, "")
    return _segment_rules(rules.get("segments") or {}, profile_id, {k: v for k, v in merged.items() if k != "segments"})


def _segment_rules(by_segment: dict, profile_id: int | None, merged: dict) -> dict:
    """Add the rules of each segment the visitor belongs to (``"segments": {"vip": {"pin": [...]}}``)."""
    if not by_segment or profile_id is None:
        return merged
    from personalize.segments.store import segments_of_profile

    for key in sorted({s["key"] for s in segments_of_profile(profile_id)} & set(by_segment)):
        merged = merge_rules({**merged, "slots": {"": by_segment[key]}}, "")
    return merged


def _bought(site_id: int, profile_id: int | None, wanted: set[str]) -> list[str]:
    """Which of ``wanted`` the profile bought, newest first."""
    if profile_id is None or not wanted:
        return []
    from personalize.profiles import recent_interactions
    from personalize.recommend.data import PURCHASE

    seen: list[str] = []
    for pid, kind, _ts, _qty in recent_interactions(site_id, profile_id, 500):
        if kind == PURCHASE and pid in wanted and pid not in seen:
            seen.append(pid)
    return seen


@hookimpl
def recommendation_candidates(site_id, profile_id, slot, product_id, limit):
    rules = _rules(site_id, slot, profile_id)
    pins = rules.get("pin") or []
    out = [Recommendation(pid, PIN_SCORE - i, "Recommended by the shop", "pinned") for i, pid in enumerate(pins[:limit])]
    follow = rules.get("bought_show") or {}
    bought = _bought(site_id, profile_id, set(follow))
    if product_id and product_id in follow and product_id not in bought:
        bought.insert(0, product_id)  # on A's own product page, B goes with it too
    if bought:
        from personalize.catalog import products_by_ids

        titles = {pid: p.title for pid, p in products_by_ids(site_id, bought).items()}
        n = 0
        for a in bought:
            for b in follow.get(a) or []:
                out.append(Recommendation(b, FOLLOW_SCORE - n, f"Goes well with {titles.get(a, a)}", "rule"))
                n += 1
    return out


@hookimpl
def modify_recommendations(site_id, profile_id, slot, items):
    rules = _rules(site_id, slot, profile_id)
    if not rules:
        return
    exclude = set(rules.get("exclude") or [])
    bury = set(rules.get("bury") or [])
    boost = rules.get("boost") or {}
    weights = rules.get("weights") or {}
    kept = []
    for item in items:
        if item.product_id in exclude:
            continue
        if item.score < PIN_SCORE / 2:
            weight = float(weights.get(item.source, 1.0))
            if weight <= 0:
                continue
            item.score *= weight
        kept.append(item)
    items[:] = kept
    lowest = min((item.score for item in items), default=0.0)
    for item in items:
        if item.product_id in boost and item.score < PIN_SCORE / 2:
            item.score *= float(boost[item.product_id])
        if item.product_id in bury:
            item.score = lowest - 1.0 - abs(item.score) * 1e-6
