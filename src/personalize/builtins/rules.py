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

Rules by attribute (``"attribute_rules": [...]``, see :mod:`personalize.recommend.merchandising`)
run after the rules by product id, on every list: compiled once per catalogue version, model
version and rule set (:func:`compiled_rules`), then applied with set look-ups only.
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


def _settings(site_id: int) -> dict | None:
    """The site's settings: those of the site the request already opened (``g.site``: the
    widget's key, an admin page) when it is this one, else read."""
    from flask import g, has_app_context

    site = g.get("site") if has_app_context() else None
    if site is None or site.id != site_id:
        from personalize.sites import get_site

        site = get_site(site_id)
    return None if site is None else (site.settings or {})


def _catalog_tag(site_id: int) -> tuple:
    """The catalogue's version as this request read it with the visitor's history (see
    :func:`personalize.recommend.service.visitor_history`), else read."""
    from flask import g, has_app_context

    tag = g.get("personalize_catalog") if has_app_context() else None
    if tag is not None and tag[0] == site_id and tag[1] is not None:
        return tag[1]
    from personalize.sites import get_site

    site = get_site(site_id)
    return (site.catalog_version, str(site.created_at)) if site is not None else (None, None)


def _rules(site_id: int, slot: str | None = None, profile_id: int | None = None) -> dict:
    settings = _settings(site_id)
    if settings is None:
        return {}
    rules = settings.get("rules", {})
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


def _bought(site_id: int, profile_id: int | None, wanted: set[str], history=None) -> list[str]:
    """Which of ``wanted`` the profile bought, newest first (from ``history`` when the caller gave it)."""
    if profile_id is None or not wanted:
        return []
    if history is not None:
        return list(dict.fromkeys(pid for pid, kind in history if kind == "purchase" and pid in wanted))
    from personalize.profiles import recent_interactions
    from personalize.recommend.data import PURCHASE

    seen: list[str] = []
    for pid, kind, _ts, _qty in recent_interactions(site_id, profile_id, 500):
        if kind == PURCHASE and pid in wanted and pid not in seen:
            seen.append(pid)
    return seen


def compiled_rules(site_id: int):
    """The site's rules by attribute compiled against its catalogue, or ``None`` when it has none.

    Kept in this process's memory under the catalogue's version (raised by every product write),
    the served model's version (popularity decides what "show" adds) and the rules themselves, so
    the catalogue is read once per change, never per request.
    """
    from flask import current_app

    from personalize.recommend import merchandising

    raw = ((_settings(site_id) or {}).get("rules") or {}).get("attribute_rules")
    if not raw:
        return None
    from personalize.recommend.service import model_cache

    loaded = model_cache().get(site_id)
    key = (_catalog_tag(site_id), loaded.version if loaded else None)
    kept_by_site = current_app.extensions.setdefault("personalize.attribute_rules", {})
    kept = kept_by_site.get(site_id)
    if kept is not None and kept[0] == key and (kept[1] is raw or kept[1] == raw):
        return kept[2]
    from personalize.catalog import catalog_rows

    popularity: list[str] = []
    if loaded is not None:
        ids = loaded.model.items.ids
        popularity = [ids[s.item] for s in loaded.model.popular(min(len(ids), 5000))]
    items = [merchandising.CatalogItem(*row) for row in catalog_rows(site_id)]
    compiled = merchandising.compile_rules(raw, items, popularity)
    kept_by_site[site_id] = (key, raw, compiled)
    return compiled


def _visit(slot, product_id, history):
    import time

    from personalize.recommend.merchandising import Visit

    return Visit(slot=slot or "", now=time.time(), history=history or (), product=product_id)


@hookimpl
def recommendation_candidates(site_id, profile_id, slot, product_id, limit, history=None):
    rules = _rules(site_id, slot, profile_id)
    pins = rules.get("pin") or []
    out = [Recommendation(pid, PIN_SCORE - i, "Recommended by the shop", "pinned") for i, pid in enumerate(pins[:limit])]
    follow = rules.get("bought_show") or {}
    bought = _bought(site_id, profile_id, set(follow), history)
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
    compiled = compiled_rules(site_id) if rules.get("attribute_rules") else None
    if compiled:
        from personalize.recommend.merchandising import extra_candidates

        out.extend(extra_candidates(compiled, _visit(slot, product_id, history), exclude=set(rules.get("exclude") or [])))
    return out


@hookimpl
def modify_recommendations(site_id, profile_id, slot, items, product_id=None, history=None):
    rules = _rules(site_id, slot, profile_id)
    if not rules:
        return
    _by_id(rules, items)
    compiled = compiled_rules(site_id) if rules.get("attribute_rules") else None
    if compiled:
        from personalize.recommend.merchandising import apply

        apply(compiled, items, _visit(slot, product_id, history))


def _by_id(rules: dict, items: list) -> None:
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
