"""A deterministic generator of shop-like interaction data, for tests and benchmarks.

The data has the structure real shops show, so that a model that is better here
for a reason is likely better on a shop too:

* categories with power-law (Zipf) popularity inside each one,
* users who prefer a few categories and are very unequal in activity,
* staples: every user has a few items they buy again and again,
* complements: many items have a partner that is often bought in the same visit,
* a funnel: most interactions are views, fewer add to cart, fewer buy,
* drift: each category's popularity rises and falls over the year.

Everything is vectorized numpy, so ten million interactions take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import CART, PURCHASE, VIEW, InteractionLog, ItemTable

_ADJECTIVES = ["blue", "red", "green", "white", "black", "pink", "golden", "silver", "vintage", "classic", "modern", "rustic", "tiny", "large", "soft", "bright", "striped", "floral", "wooden", "glass", "ceramic", "linen", "cotton", "velvet"]
_NOUNS = ["mug", "candle", "lantern", "cushion", "frame", "basket", "tray", "bag", "clock", "lamp", "vase", "bowl", "plate", "jar", "tin", "box", "notebook", "card", "ribbon", "garland", "ornament", "blanket", "apron", "towel", "coaster"]
_COUNTRIES = ("United Kingdom", "Germany", "France", "Spain", "Netherlands", "Belgium", "Italy", "Norway")


@dataclass
class SyntheticShop:
    """Generated data: the log, the catalogue and each user's country (a segment)."""

    log: InteractionLog
    items: ItemTable
    countries: list[str]


def generate(
    n_items: int = 2000,
    n_users: int = 3000,
    n_interactions: int = 200_000,
    days: float = 365.0,
    seed: int = 7,
    start: float = 1_293_840_000.0,  # 2011-01-01 UTC
) -> SyntheticShop:
    """Generate a shop; the same arguments always give the same data.

    About ``n_interactions`` rows are produced (complements add a few percent on
    top), spread over ``days`` from ``start`` (unix seconds).
    """
    rng = np.random.default_rng(seed)
    n_cat = max(3, n_items // 150)
    cat_of_item = np.sort(rng.integers(0, n_cat, n_items))
    cat_of_item[:n_cat] = np.arange(n_cat)  # every category has at least one item
    cat_of_item = np.sort(cat_of_item)
    cat_start = np.searchsorted(cat_of_item, np.arange(n_cat))
    cat_size = np.bincount(cat_of_item, minlength=n_cat)
    # Zipf inside each category: rank r gets weight 1 / (r + 1) ** 1.1
    rank = np.arange(n_items) - cat_start[cat_of_item]
    weight = 1.0 / (rank + 1.0) ** 1.1
    cdf = np.empty(n_items)
    for c in range(n_cat):
        lo, hi = cat_start[c], cat_start[c] + cat_size[c]
        w = np.cumsum(weight[lo:hi])
        cdf[lo:hi] = c + w / w[-1]
    cat_pop = rng.pareto(1.5, n_cat) + 1.0
    cat_phase = rng.uniform(0, 2 * np.pi, n_cat)

    # users: activity, favourite categories, staples
    activity = rng.lognormal(0.0, 1.2, n_users)
    fav = rng.choice(n_cat, size=(n_users, 3), p=cat_pop / cat_pop.sum())
    fav_p = rng.dirichlet(np.ones(3) * 0.7, n_users)
    fav_cdf = np.cumsum(fav_p, axis=1)
    staples = _sample_items(rng, fav[np.arange(n_users), rng.integers(0, 3, (4, n_users))].T, cdf)
    repeat_rate = rng.beta(2.0, 5.0, n_users)

    # sessions: ~4 interactions each
    n_sessions = max(1, n_interactions // 4)
    s_user = rng.choice(n_users, size=n_sessions, p=activity / activity.sum())
    s_time = start + np.sort(rng.uniform(0, days * 86400.0, n_sessions))
    sizes = rng.poisson(3.0, n_sessions) + 1
    scale = n_interactions / sizes.sum()
    sizes = np.maximum(1, np.round(sizes * scale)).astype(np.int64)
    ev_session = np.repeat(np.arange(n_sessions), sizes)
    n_ev = len(ev_session)
    user = s_user[ev_session]
    ts = s_time[ev_session] + rng.uniform(0, 1800.0, n_ev)

    # drifting category choice: a user's favourite, re-drawn by the season's popularity
    u = rng.random(n_ev)
    slot = (u[:, None] > fav_cdf[user]).sum(axis=1).clip(0, 2)
    cat = fav[user, slot]
    season = 1.0 + 0.8 * np.sin(2 * np.pi * (ts - start) / (days * 86400.0) + cat_phase[cat])
    off_season = rng.random(n_ev) > season / 1.8
    wander = rng.choice(n_cat, size=n_ev, p=cat_pop / cat_pop.sum())
    cat = np.where(off_season & (rng.random(n_ev) < 0.3), wander, cat)
    item = _sample_items(rng, cat, cdf)
    repeat = rng.random(n_ev) < repeat_rate[user]
    item = np.where(repeat, staples[user, rng.integers(0, 4, n_ev)], item)

    # kinds: the funnel; staples are mostly bought
    r = rng.random(n_ev)
    kind = np.where(r < 0.6, VIEW, np.where(r < 0.78, CART, PURCHASE)).astype(np.int8)
    kind = np.where(repeat & (rng.random(n_ev) < 0.7), PURCHASE, kind).astype(np.int8)

    # complements: a partner in another category, bought in the same visit
    partner = _sample_items(rng, (cat_of_item + 1 + rng.integers(0, n_cat - 1, n_items)) % n_cat, cdf)
    with_partner = (kind == PURCHASE) & (rng.random(n_ev) < 0.25)
    extra = np.flatnonzero(with_partner)
    user = np.concatenate([user, user[extra]])
    item = np.concatenate([item, partner[item[extra]]])
    kind = np.concatenate([kind, np.full(len(extra), PURCHASE, dtype=np.int8)])
    ts = np.concatenate([ts, ts[extra] + 60.0])
    qty = np.where(kind == PURCHASE, rng.integers(1, 6, len(kind)), 1).astype(np.float32)

    order = np.argsort(ts, kind="stable")
    log = InteractionLog(
        user=user[order].astype(np.int32),
        item=item[order].astype(np.int32),
        kind=kind[order],
        ts=ts[order],
        qty=qty[order],
        n_users=n_users,
        n_items=n_items,
    )
    adj = rng.integers(0, len(_ADJECTIVES), n_items)
    noun_of_cat = rng.integers(0, len(_NOUNS), n_cat)
    titles = [f"{_ADJECTIVES[a].title()} {_NOUNS[noun_of_cat[c]].title()} No. {i}" for i, (a, c) in enumerate(zip(adj, cat_of_item, strict=True))]
    categories = [f"Category {c}" for c in cat_of_item]
    descriptions = [f"A {_ADJECTIVES[a]} {_NOUNS[noun_of_cat[c]]} for the home" for a, c in zip(adj, cat_of_item, strict=True)]
    items = ItemTable(
        ids=[f"SKU{i:06d}" for i in range(n_items)],
        titles=titles,
        categories=categories,
        descriptions=descriptions,
        in_stock=np.ones(n_items, dtype=bool),
    )
    country = rng.choice(len(_COUNTRIES), size=n_users, p=_country_p())
    return SyntheticShop(log=log, items=items, countries=[_COUNTRIES[c] for c in country])


def _country_p() -> np.ndarray:
    p = np.array([0.8, 0.05, 0.05, 0.03, 0.03, 0.02, 0.01, 0.01])
    return p / p.sum()


def _sample_items(rng: np.random.Generator, cats: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Draw one item per entry of ``cats`` from that category's Zipf distribution."""
    draw = cats + rng.random(cats.shape) * (1 - 1e-12)
    idx = np.searchsorted(cdf, draw.ravel(), side="right").reshape(cats.shape)
    return np.minimum(idx, len(cdf) - 1)
