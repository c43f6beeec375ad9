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


# ----------------------------------------------------------------- shop regimes
# Three shops unlike Online Retail, each with the structure that decides which
# recommender wins there. Purchases only unless said otherwise; a "basket" is one
# customer's purchases of one day (the moment is the day's noon).

_GROCERY = {
    "Dairy": ["milk", "yoghurt", "butter", "cheese", "cream"], "Bakery": ["bread", "rolls", "croissants", "bagels"],
    "Produce": ["bananas", "apples", "tomatoes", "potatoes", "onions", "carrots", "salad"],
    "Pantry": ["pasta", "rice", "flour", "sauce", "oil", "cereal", "coffee", "tea"],
    "Drinks": ["water", "juice", "cola", "beer", "wine"], "Frozen": ["pizza", "peas", "ice cream", "fish fingers"],
    "Household": ["detergent", "kitchen roll", "toilet paper", "dish soap"], "Snacks": ["crisps", "chocolate", "biscuits", "nuts"],
    "Meat": ["chicken", "mince", "sausages", "ham"], "Baby": ["nappies", "baby food", "wipes"],
}
_GROCERY_WORDS = ["organic", "low fat", "whole", "free range", "value", "premium", "family pack", "light", "classic", "fresh", "large", "small"]
_BRANDS = ["Acme", "Northfield", "Bellmont", "Greenway", "Harvest", "Riverside", "Summit", "Oakridge", "Sunny", "Blue Hill"]
_ELECTRONICS = {
    "Phones": ["smartphone"], "Phone accessories": ["phone case", "screen protector", "charger", "car mount"],
    "Laptops": ["laptop", "ultrabook"], "Computer accessories": ["mouse", "keyboard", "laptop bag", "USB hub", "webcam"],
    "Audio": ["headphones", "earbuds", "speaker", "soundbar"], "TV": ["television", "TV wall mount", "HDMI cable"],
    "Cameras": ["camera", "lens", "tripod", "memory card"], "Gaming": ["console", "controller", "game"],
    "Home": ["smart bulb", "router", "smart plug", "robot vacuum"], "Consumables": ["batteries", "printer ink", "cleaning wipes"],
}
_FASHION = {
    "T-shirts": ["t-shirt", "top"], "Shirts": ["shirt", "blouse"], "Trousers": ["trousers", "chinos", "jeans"],
    "Dresses": ["dress", "skirt"], "Knitwear": ["jumper", "cardigan"], "Outerwear": ["jacket", "coat"],
    "Shoes": ["trainers", "boots", "sandals"], "Underwear": ["socks", "briefs", "bra"], "Accessories": ["scarf", "belt", "cap", "bag"],
}
_COLOURS = ["black", "white", "navy", "grey", "beige", "red", "green", "blue", "pink", "yellow", "brown", "khaki"]
_FABRICS = ["cotton", "linen", "denim", "wool", "jersey", "silk-look", "recycled polyester", "organic cotton"]


def _catalogue(rng, n_items: int, groups: dict[str, list[str]], words: list[str], zipf: float, price_scale: dict[str, float] | None = None):
    """Items spread over the groups' categories, Zipf popularity inside each and across them,
    titles "Brand word noun" with the category's nouns (so look-alikes share words)."""
    cats = list(groups)
    share = rng.dirichlet(np.ones(len(cats)) * 2.0)
    cat_of = np.sort(rng.choice(len(cats), n_items, p=share))
    cat_of[: len(cats)] = np.arange(len(cats))
    cat_of = np.sort(cat_of)
    rank = np.arange(n_items) - np.searchsorted(cat_of, cat_of)
    weight = 1.0 / (rank + 1.0) ** zipf * (share[cat_of] * len(cats))
    perm = rng.permutation(n_items)  # items of a category are not contiguous ids in a real shop
    inv = np.empty(n_items, dtype=np.int64)
    inv[perm] = np.arange(n_items)
    cat_of, weight = cat_of[perm], weight[perm]
    noun = np.array([rng.integers(0, len(groups[cats[c]])) for c in cat_of])
    word = rng.integers(0, len(words), n_items)
    brand = rng.integers(0, len(_BRANDS), n_items)
    titles = [f"{_BRANDS[b]} {words[w]} {groups[cats[c]][k]}" for b, w, c, k in zip(brand, word, cat_of, noun, strict=True)]
    base = np.array([(price_scale or {}).get(cats[c], 1.0) for c in cat_of])
    price = np.round(base * rng.lognormal(0.0, 0.5, n_items), 2)
    return cat_of, weight / weight.sum(), titles, [cats[c] for c in cat_of], price, noun


def _shop(user, item, ts, kind, qty, n_users, items_meta, countries, n_items, ids_prefix="SKU") -> SyntheticShop:
    order = np.argsort(ts, kind="stable")
    log = InteractionLog(
        user=np.asarray(user)[order].astype(np.int32), item=np.asarray(item)[order].astype(np.int32),
        kind=np.asarray(kind)[order].astype(np.int8), ts=np.asarray(ts, dtype=np.float64)[order],
        qty=np.asarray(qty, dtype=np.float32)[order], n_users=n_users, n_items=n_items,
    )
    titles, categories, descriptions, price = items_meta
    table = ItemTable(ids=[f"{ids_prefix}{i:06d}" for i in range(n_items)], titles=titles, categories=categories,
                      descriptions=descriptions, in_stock=np.ones(n_items, dtype=bool), prices=price)
    return SyntheticShop(log=log, items=table, countries=countries)


def _in_category(rng, cat_of: np.ndarray, weight: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Draw one item of each given category, with probability proportional to ``weight``."""
    order = np.lexsort((np.arange(len(cat_of)), cat_of))
    c_sorted, w = cat_of[order], weight[order]
    n_cat = int(cat_of.max()) + 1
    starts = np.searchsorted(c_sorted, np.arange(n_cat))
    cum = np.cumsum(w)
    before = np.concatenate(([0.0], cum))[starts]
    total = np.concatenate((cum[np.searchsorted(c_sorted, np.arange(n_cat), side="right") - 1], [0.0]))[:n_cat] - before
    target = before[cats] + rng.random(len(cats)) * total[cats]
    idx = np.minimum(np.searchsorted(cum, target, side="right"), len(cum) - 1)
    return order[idx]


def _draw(rng, p: np.ndarray, size) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(size) * p.sum(), side="right"), len(p) - 1)


def grocery(n_items: int = 25_000, n_users: int = 6_000, days: float = 120.0, seed: int = 1,
            start: float = 1_704_067_200.0) -> SyntheticShop:
    """A supermarket: staples each customer re-buys on their own rhythm (every 1-2 weeks),
    strong best sellers, day-level baskets, purchases only; about 1 million lines at the
    default size. A customer's shopping days are those their staples fall due, and every
    basket adds a few best sellers and a few items of the customer's favourite aisles."""
    rng = np.random.default_rng(seed)
    cat_of, pop, titles, cats, price, _ = _catalogue(rng, n_items, _GROCERY, _GROCERY_WORDS, 1.3,
                                                     {"Meat": 4.0, "Household": 3.0, "Baby": 6.0, "Drinks": 1.5})
    n_cat = len(_GROCERY)
    # staples: 4-12 per customer, drawn from the best sellers of their favourite aisles
    n_staples = rng.integers(4, 13, n_users)
    pair_user = np.repeat(np.arange(n_users), n_staples)
    fav = rng.dirichlet(np.ones(n_cat) * 0.5, n_users)
    staple_cat = (fav[pair_user].cumsum(axis=1) > rng.random(len(pair_user))[:, None]).argmax(axis=1)
    staple = _in_category(rng, cat_of, pop ** 0.7, staple_cat)
    interval = rng.uniform(7.0, 14.0, len(pair_user)) * rng.choice([1.0, 1.0, 1.0, 2.0], len(pair_user))
    churn = rng.uniform(0.3, 1.0, n_users)  # the share of the period a customer stays
    first = rng.uniform(0, 1, len(pair_user)) * interval
    k = int(days / 7.0) + 2
    gaps = interval[:, None] * rng.lognormal(0.0, 0.15, (len(pair_user), k))
    when = first[:, None] + np.concatenate([np.zeros((len(pair_user), 1)), np.cumsum(gaps, axis=1)[:, :-1]], axis=1)
    ok = when < (days * churn[pair_user])[:, None]
    su = np.repeat(pair_user, k)[ok.ravel()]
    si = np.repeat(staple, k)[ok.ravel()]
    sd = np.floor(when.ravel()[ok.ravel()])
    # every basket (customer, day) adds best sellers and favourites
    basket_key = np.unique(su.astype(np.int64) * 10_000 + sd.astype(np.int64))
    bu, bd = basket_key // 10_000, basket_key % 10_000
    n_extra = rng.poisson(2.5, len(basket_key))
    eu, ed = np.repeat(bu, n_extra), np.repeat(bd, n_extra)
    best = _draw(rng, pop, len(eu))
    cat = (fav[eu].cumsum(axis=1) > rng.random(len(eu))[:, None]).argmax(axis=1)
    mine = _in_category(rng, cat_of, pop, cat)
    extra = np.where(rng.random(len(eu)) < 0.55, best, mine)
    user = np.concatenate([su, eu])
    item = np.concatenate([si, extra])
    day = np.concatenate([sd, ed])
    ts = start + day * 86400.0 + 12 * 3600.0
    qty = rng.integers(1, 4, len(user))
    countries = [_COUNTRIES[c] for c in rng.choice(len(_COUNTRIES), size=n_users, p=_country_p())]
    descriptions = [f"{c.lower()} aisle: {t.lower()}" for t, c in zip(titles, cats, strict=True)]
    return _shop(user, item, ts, np.full(len(user), PURCHASE), qty, n_users, (titles, cats, descriptions, price), countries, n_items)


def electronics(n_items: int = 8_000, n_users: int = 20_000, days: float = 270.0, seed: int = 2,
                start: float = 1_704_067_200.0) -> SyntheticShop:
    """An electronics shop: a long tail of products, few repeat buyers, visitors who look
    at several products of one category before buying one (or none), accessories bought
    with or after their main product, new models launched during the period."""
    rng = np.random.default_rng(seed)
    cat_of, pop, titles, cats, price, noun = _catalogue(rng, n_items, _ELECTRONICS, ["Pro", "Lite", "Max", "Mini", "X", "Plus", "S", "Air", "Ultra", "Go"], 0.9,
                                                        {"Phones": 400, "Laptops": 800, "TV": 300, "Cameras": 250, "Gaming": 150, "Audio": 80})
    names = list(_ELECTRONICS)
    launch = np.where(rng.random(n_items) < 0.25, rng.uniform(0, days, n_items), 0.0)
    accessory = {"Phones": "Phone accessories", "Laptops": "Computer accessories", "TV": "TV", "Cameras": "Cameras", "Gaming": "Gaming"}
    by_cat = [np.flatnonzero(cat_of == c) for c in range(len(names))]
    # sessions: 1-4 per visitor (most come once), each on one category
    n_sessions = 1 + rng.poisson(0.6, n_users)
    s_user = np.repeat(np.arange(n_users), n_sessions)
    s_day = rng.uniform(0, days, len(s_user))
    cat_p = np.array([len(b) for b in by_cat], dtype=float) * rng.uniform(0.5, 1.5, len(names))
    # each visitor cares about two categories; most sessions are on one of them
    fav = np.stack([_draw(rng, cat_p, n_users), _draw(rng, cat_p, n_users)], axis=1)
    s_cat = np.where(rng.random(len(s_user)) < 0.75, fav[s_user, rng.integers(0, 2, len(s_user))], _draw(rng, cat_p, len(s_user)))
    n_views = 1 + rng.poisson(4.0, len(s_user))
    vu, vd, vc = np.repeat(s_user, n_views), np.repeat(s_day, n_views), np.repeat(s_cat, n_views)
    vi = np.empty(len(vu), dtype=np.int64)
    for c in range(len(names)):
        m = vc == c
        if m.any():
            vi[m] = by_cat[c][_draw(rng, pop[by_cat[c]], int(m.sum()))]
    # a product launched later cannot be seen yet: take the category's best seller instead
    late = launch[vi] > vd
    vi[late] = np.array([by_cat[c][np.argmax(pop[by_cat[c]] * (launch[by_cat[c]] <= 0))] for c in vc[late]], dtype=np.int64) if late.any() else vi[late]
    vts = start + vd * 86400.0 + np.arange(len(vu)) % 50 * 60.0
    buy_session = rng.random(len(s_user)) < 0.35
    first_of = np.concatenate(([0], np.cumsum(n_views)[:-1]))
    chosen = first_of + (rng.random(len(s_user)) * n_views).astype(np.int64)
    b = chosen[buy_session]
    # half the buyers think it over and come back for one of the products they looked at
    later = rng.random(len(b)) < 0.5
    bu, bi = vu[b], vi[b]
    bts = vts[b] + np.where(later, rng.uniform(1, 21, len(b)) * 86400.0, 600.0)
    # accessories with the main product, the same day or within two weeks
    cat_b = cat_of[bi]
    acc_user, acc_item, acc_ts = [], [], []
    for c_name, a_name in accessory.items():
        c, a = names.index(c_name), names.index(a_name)
        m = (cat_b == c) & (rng.random(len(cat_b)) < 0.6)
        if m.any():
            # the main product's own accessory line: items whose title shares its word
            acc = by_cat[a][_draw(rng, pop[by_cat[a]], int(m.sum()))]
            acc_user.append(bu[m])
            acc_item.append(acc)
            acc_ts.append(bts[m] + np.where(rng.random(int(m.sum())) < 0.4, 300.0, rng.uniform(1, 30, int(m.sum())) * 86400.0))
    # consumables bought again now and then
    cons = names.index("Consumables")
    rep_users = rng.choice(n_users, n_users // 40, replace=False)
    n_rep = rng.integers(1, 4, len(rep_users))
    ru = np.repeat(rep_users, n_rep)
    ri = np.repeat(by_cat[cons][_draw(rng, pop[by_cat[cons]], len(rep_users))], n_rep)
    rts = start + rng.uniform(0, days, len(ru)) * 86400.0
    user = np.concatenate([vu, bu, *acc_user, ru])
    item = np.concatenate([vi, bi, *acc_item, ri])
    ts = np.concatenate([vts, bts, *acc_ts, rts])
    kind = np.concatenate([np.full(len(vu), VIEW), np.full(len(bu), PURCHASE), np.full(sum(len(a) for a in acc_user), PURCHASE), np.full(len(ru), PURCHASE)])
    keep = ts < start + days * 86400.0
    descriptions = [f"{c}: {t}" for t, c in zip(titles, cats, strict=True)]
    countries = [_COUNTRIES[c] for c in rng.choice(len(_COUNTRIES), size=n_users, p=_country_p())]
    return _shop(user[keep], item[keep], ts[keep], kind[keep], np.ones(int(keep.sum())), n_users, (titles, cats, descriptions, price), countries, n_items)


def fashion(n_items: int = 15_000, n_users: int = 2_900, days: float = 30.0, seed: int = 3,
            start: float = 1_704_067_200.0) -> SyntheticShop:
    """A fashion retailer's month: many articles, each colour of a style its own article, a new
    collection arriving through the month (new articles sell best in their first weeks), customers
    loyal to a few categories and colours, day-level baskets of purchases."""
    rng = np.random.default_rng(seed)
    names = list(_FASHION)
    style = rng.integers(0, n_items // 4, n_items)  # articles of one style differ in colour
    cat_of = style % len(names)
    noun = style % 7
    colour = rng.integers(0, len(_COLOURS), n_items)
    fabric = style % len(_FABRICS)
    titles = [f"{_COLOURS[c].title()} {_FABRICS[f]} {_FASHION[names[k]][n % len(_FASHION[names[k]])]}" for c, f, k, n in zip(colour, fabric, cat_of, noun, strict=True)]
    cats = [names[k] for k in cat_of]
    price = np.round(rng.lognormal(3.0, 0.6, n_items), 2)
    style_pop = 1.0 / (rng.permutation(n_items // 4 + 1) + 1.0) ** 0.9
    pop = style_pop[style] * rng.lognormal(0, 0.7, n_items) * np.where(np.isin(colour, [0, 1, 2]), 2.0, 1.0)
    launch = np.where(rng.random(n_items) < 0.3, rng.uniform(0, days, n_items), -rng.uniform(0, 90, n_items))
    fav_cat = rng.dirichlet(np.ones(len(names)) * 0.4, n_users)
    fav_col = rng.dirichlet(np.ones(len(_COLOURS)) * 0.5, n_users)
    visits = 1 + rng.poisson(1.5, n_users)
    v_user = np.repeat(np.arange(n_users), visits)
    v_day = np.floor(rng.uniform(0, days, len(v_user)))
    n_buy = 1 + rng.poisson(1.2, len(v_user))
    bu, bd = np.repeat(v_user, n_buy), np.repeat(v_day, n_buy)
    # each purchase: a category and colour the customer likes, an article alive then, fresh ones favoured
    cat = (fav_cat[bu].cumsum(axis=1) > rng.random(len(bu))[:, None]).argmax(axis=1)
    col = (fav_col[bu].cumsum(axis=1) > rng.random(len(bu))[:, None]).argmax(axis=1)
    key = cat_of * len(_COLOURS) + colour
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(len(names) * len(_COLOURS) + 1))
    item = np.empty(len(bu), dtype=np.int64)
    want = cat * len(_COLOURS) + col
    any_colour = rng.random(len(bu)) < 0.3
    for w in np.unique(want):
        m = np.flatnonzero(want == w)
        for d in np.unique(bd[m]):
            mm = m[bd[m] == d]
            c = w // len(_COLOURS)
            pool = order[bounds[w]:bounds[w + 1]] if bounds[w + 1] > bounds[w] else np.flatnonzero(cat_of == c)
            pool_all = np.flatnonzero(cat_of == c)
            for sub, choices in ((mm[~any_colour[mm]], pool), (mm[any_colour[mm]], pool_all)):
                if not len(sub):
                    continue
                age = d - launch[choices]
                alive = age >= 0
                if not alive.any():
                    alive[:] = True
                weight = np.where(alive, pop[choices] * np.exp(-np.maximum(age, 0) / 20.0), 0.0)
                item[sub] = choices[_draw(rng, weight, len(sub))]
    # basics (socks, t-shirts) bought again now and then
    order = np.lexsort((bd, bu))
    bu, bd, item = bu[order], bd[order], item[order]
    again = rng.random(len(bu)) < 0.05
    prev = np.concatenate(([0], item[:-1]))
    earlier_visit = np.concatenate(([False], (bu[1:] == bu[:-1]) & (bd[1:] > bd[:-1])))
    item = np.where(again & earlier_visit, prev, item)
    ts = start + bd * 86400.0 + 12 * 3600.0
    descriptions = [f"{cats[i].lower()} in {_COLOURS[colour[i]]} {_FABRICS[fabric[i]]}" for i in range(n_items)]
    countries = [_COUNTRIES[c] for c in rng.choice(len(_COUNTRIES), size=n_users, p=_country_p())]
    return _shop(bu, item, ts, np.full(len(bu), PURCHASE), np.ones(len(bu)), n_users, (titles, cats, descriptions, price), countries, n_items, "ART")


REGIMES = {"grocery": grocery, "electronics": electronics, "fashion": fashion}
