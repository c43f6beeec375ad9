"""Computed scores of every customer: RFM, value / attrition / potential, behaviour clusters,
and purchase propensity (the chance of an order, and of each likely category, in the next 30 days).

``compute_scores(site_id)`` reads the orders once into arrays, computes everything
with numpy, scipy and scikit-learn, and replaces the site's ``profile_scores`` rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sqlalchemy import delete, insert, select

from ..db import db
from ..models import Interaction, Order, Product, utcnow
from ..profiles.facts import country_facts
from .models import ProfileScore, ScoreRun
from .propensity import HORIZON_DAYS as PROPENSITY_DAYS
from .propensity import CategoryHistory, OrderHistory, category_propensity, order_propensity
from .vap import fit_bgnbd, fit_gamma_gamma

DAY = 86400.0
HORIZON_DAYS = 365.0
MAX_K = 8
SAMPLE = 4000


@dataclass
class Customers:
    """One row per customer with orders up to ``as_of``."""

    profile_id: np.ndarray
    orders: np.ndarray
    total: np.ndarray
    first_days: np.ndarray  # days before as_of of the first order
    last_days: np.ndarray  # days before as_of of the last order
    value_12m: np.ndarray
    history: OrderHistory | None = None  # every order, on a clock of days where ``as_of`` is 0


MAX_COUNTRIES = 250  # the trees take a category feature of at most 255 values; rarer countries share one


def load_customers(site_id: int, as_of: datetime) -> Customers:
    rows = db.session.execute(
        select(Order.profile_id, Order.occurred_at, Order.total, Order.country)
        .where(Order.site_id == site_id, Order.profile_id.is_not(None), Order.occurred_at <= as_of)
        .order_by(Order.profile_id)
    ).all()
    if not rows:
        empty = np.zeros(0)
        return Customers(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
    pid = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    age = np.fromiter(((as_of - r[1]).total_seconds() / DAY for r in rows), dtype=np.float64, count=len(rows))
    total = np.fromiter((r[2] or 0.0 for r in rows), dtype=np.float64, count=len(rows))
    ids, start, counts = np.unique(pid, return_index=True, return_counts=True)
    customer = np.repeat(np.arange(len(ids)), counts)  # rows come ordered by profile
    history = OrderHistory(customer, -age, total, len(ids), customer_countries(customer, [r[3] or "" for r in rows], len(ids)))
    return Customers(
        profile_id=ids, orders=counts.astype(np.float64), total=np.add.reduceat(total, start),
        first_days=np.maximum.reduceat(age, start), last_days=np.minimum.reduceat(age, start),
        value_12m=np.add.reduceat(np.where(age <= HORIZON_DAYS, total, 0.0), start), history=history,
    )


def customer_countries(customer: np.ndarray, country: list[str], n: int) -> np.ndarray | None:
    """Each customer's most frequent order country as a small code (−1: unknown); ``None`` when no order has one."""
    names, code = np.unique(np.array(country, dtype=object), return_inverse=True)
    named = np.array([bool(x) for x in names])
    if not named.any():
        return None
    pairs, count = np.unique(customer * len(names) + code.ravel(), return_counts=True)
    who, what = np.divmod(pairs, len(names))
    keep = named[what]
    who, what, count = who[keep], what[keep], count[keep]
    order = np.lexsort((what, -count, who))  # per customer: the most orders first, ties by name
    first = order[np.r_[True, who[order][1:] != who[order][:-1]]]
    best = np.full(n, -1)
    best[who[first]] = what[first]
    # codes by how many customers have each country: the commonest keep their own, the rest share one
    seen = np.bincount(best[best >= 0], minlength=len(names))
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(-seen, kind="stable")] = np.arange(len(names))
    return np.where(best >= 0, np.minimum(rank[np.maximum(best, 0)], MAX_COUNTRIES), -1).astype(np.int64)


def load_categories(site_id: int, as_of: datetime, c: Customers) -> CategoryHistory:
    """The categories each customer bought in each order (purchases joined to products' ``category``)."""
    from ..kinds import PURCHASE

    rows = db.session.execute(
        select(Interaction.profile_id, Interaction.occurred_at, Product.category).distinct()
        .join(Product, (Product.site_id == Interaction.site_id) & (Product.external_id == Interaction.product_id))
        .where(Interaction.site_id == site_id, Interaction.kind == PURCHASE, Interaction.profile_id.is_not(None),
               Interaction.occurred_at <= as_of, Product.category != "")
    ).all()
    none = np.zeros(0, dtype=np.int64)
    if not rows:
        return CategoryHistory(none, np.zeros(0), none, [])
    pid = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    pos = np.minimum(np.searchsorted(c.profile_id, pid), max(len(c.profile_id) - 1, 0))
    known = (c.profile_id[pos] == pid) if len(c.profile_id) else np.zeros(len(pid), dtype=bool)
    names, cat = np.unique(np.array([r[2] for r in rows], dtype=object), return_inverse=True)
    day = np.fromiter((-(as_of - r[1]).total_seconds() / DAY for r in rows), dtype=np.float64, count=len(rows))
    return CategoryHistory(pos[known], day[known], cat[known].astype(np.int64), [str(n) for n in names])


def quintile(values: np.ndarray) -> np.ndarray:
    """1-5 by rank (ties share their average rank), 5 for the highest values."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    pct = rankdata(values, method="average") / len(values)
    return np.clip(np.ceil(pct * 5), 1, 5).astype(np.int64)


def rfm_segment(r: int, f: int) -> str:
    if r >= 4 and f >= 4:
        return "Champions"
    if r >= 3 and f >= 4:
        return "Loyal customers"
    if r >= 4 and f == 1:
        return "New customers"
    if r >= 4:
        return "Potential loyalists"
    if r <= 2 and f >= 3:
        return "At risk"
    if r <= 2:
        return "Hibernating"
    return "Need attention"


def cluster_features(c: Customers) -> np.ndarray:
    return np.column_stack([
        np.log1p(c.orders), np.log1p(c.total / np.maximum(c.orders, 1)), np.sqrt(c.last_days), np.sqrt(c.first_days),
    ])


def choose_clusters(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int, dict[int, float]]:
    """k-means on standardised features, k from 2 to 8 chosen by the best silhouette on a sample."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    n = len(features)
    if n < 10:
        return np.zeros(n, dtype=np.int64), 1, {}
    from threadpoolctl import threadpool_limits

    z = StandardScaler().fit_transform(features)
    rng = np.random.default_rng(seed)
    sample = z[rng.choice(n, SAMPLE, replace=False)] if n > SAMPLE else z
    distinct = len(np.unique(sample, axis=0))  # k-means cannot find more clusters than distinct customers
    if distinct < 3:
        return np.zeros(n, dtype=np.int64), 1, {}
    scores: dict[int, float] = {}
    models = {}
    # one thread: on small data OpenMP's threads only fight each other (24 s against 1 s, measured)
    with threadpool_limits(1):
        for k in range(2, min(MAX_K, len(sample) - 1, distinct - 1) + 1):
            km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(sample)
            scores[k] = float(silhouette_score(sample, km.labels_, sample_size=min(len(sample), 2000), random_state=seed))
            models[k] = km
        best = max(scores, key=lambda k: (round(scores[k], 3), -k))
        labels = models[best].predict(z).astype(np.int64)
    return labels, best, scores


def cluster_names(features: np.ndarray, labels: np.ndarray) -> dict[int, str]:
    """A readable name per cluster from how its centre differs from everyone's (in standard deviations)."""
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-9
    names: dict[int, str] = {}
    for k in sorted(set(labels.tolist())):
        zc = (features[labels == k].mean(axis=0) - mean) / std
        freq = "Frequent" if zc[0] > 0.5 else "One-off" if zc[0] < -0.5 else "Occasional"
        basket = "big-basket" if zc[1] > 0.5 else "small-basket" if zc[1] < -0.5 else "mid-basket"
        status = "lapsed" if zc[2] > 0.5 else "active" if zc[2] < -0.5 else "cooling"
        newness = ", new" if zc[3] < -0.7 else ", long-standing" if zc[3] > 0.7 else ""
        name = f"{freq} {basket} buyers, {status}{newness}"
        base, i = name, 2
        while name in names.values():
            name, i = f"{base} ({i})", i + 1
        names[k] = name
    return names


def compute_scores(
    site_id: int, as_of: datetime | None = None, progress: Callable[[str], None] | None = None, rebuild: bool = True
) -> dict[str, Any]:
    """Recompute every customer's scores as of ``as_of`` (default now), replace them, and
    rebuild the segments that use scores. Commits; returns a summary with the fitted parameters."""
    say = progress or (lambda stage: None)
    started = time.perf_counter()
    as_of = as_of or utcnow()
    say("loading orders")
    c = load_customers(site_id, as_of)
    n = len(c.profile_id)
    summary: dict[str, Any] = {"customers": n, "as_of": as_of.isoformat()}
    if n:
        say(f"RFM for {n:,} customers")
        r = 6 - quintile(c.last_days)
        f = quintile(c.orders)
        m = quintile(c.total)
        say("fitting BG/NBD and Gamma-Gamma")
        x = c.orders - 1
        tx = (c.first_days - c.last_days) / 7.0
        T = c.first_days / 7.0
        bg = fit_bgnbd(x, tx, T)
        alive = bg.p_alive(x, tx, T)
        expected = bg.expected_purchases(HORIZON_DAYS / 7.0, x, tx, T)
        avg_order = c.total / np.maximum(c.orders, 1)
        gg = fit_gamma_gamma(c.orders, avg_order)
        order_value = np.clip(gg.expected_order_value(c.orders, np.maximum(avg_order, 0.0)), 0.0, None)
        potential = expected * order_value
        say("clustering")
        features = cluster_features(c)
        labels, k, silhouettes = choose_clusters(features)
        names = cluster_names(features, labels) if k > 1 else {0: "All customers"}
        summary.update({
            "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "time_unit": "week"},
            "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma},
            "k": k, "silhouettes": silhouettes, "clusters": {names[i]: int((labels == i).sum()) for i in names},
        })
        say("order propensity (next 30 days)")
        fallback = bg.p_order(PROPENSITY_DAYS / 7.0, x, tx, T)  # for a shop too small to learn from
        timed = time.perf_counter()
        ordering = order_propensity(c.history, 0.0, fallback=fallback)
        summary["order_propensity"] = {**ordering.details, "seconds": round(time.perf_counter() - timed, 3),
                                       "expected_customers": float(np.nansum(ordering.probability))}
        say("category propensity (next 30 days)")
        timed = time.perf_counter()
        categories = load_categories(site_id, as_of, c)
        likely = category_propensity(c.history, categories, 0.0)
        summary["category_propensity"] = {**likely.details, "categories": len(categories.names),
                                          "seconds": round(time.perf_counter() - timed, 3)}
        top: dict[int, dict[str, float]] = {}
        for i, cat, p in zip(likely.customer.tolist(), likely.category.tolist(), likely.probability.tolist(), strict=True):
            top.setdefault(i, {})[likely.names[cat]] = round(p, 4)  # likeliest first
        has_categories = bool(categories.names)  # none in the catalogue: say so (NULL), do not invent any
        say("storing scores")
        rows = [
            {
                "profile_id": int(c.profile_id[i]), "site_id": site_id, "orders": int(c.orders[i]),
                "total_spent": round(float(c.total[i]), 2), "avg_order": round(float(avg_order[i]), 2),
                "recency_days": round(float(c.last_days[i]), 3), "tenure_days": round(float(c.first_days[i]), 3),
                "r_score": int(r[i]), "f_score": int(f[i]), "m_score": int(m[i]), "rfm": f"{r[i]}{f[i]}{m[i]}",
                "rfm_segment": rfm_segment(int(r[i]), int(f[i])), "value": round(float(c.value_12m[i]), 2),
                "attrition": round(float(1.0 - alive[i]), 4), "expected_orders": round(float(expected[i]), 4),
                "potential": round(float(potential[i]), 2), "cluster": int(labels[i]), "cluster_name": names[int(labels[i])],
                "computed_at": as_of, "order_propensity": _rounded(ordering.probability[i]),
                "category_propensity": top.get(i, {}) if has_categories else None,
            }
            for i in range(n)
        ]
    else:
        rows = []
    try:
        db.session.execute(delete(ProfileScore).where(ProfileScore.site_id == site_id))
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(ProfileScore), rows[start : start + 5000])
        seconds = time.perf_counter() - started
        db.session.add(ScoreRun(site_id=site_id, as_of=as_of, customers=n, details=_jsonable(summary), seconds=round(seconds, 3)))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    say("country facts")
    summary["countries_set"] = country_facts(site_id, as_of)
    if rebuild:
        from .bulk import rebuild_all

        say("rebuilding segments")
        summary["segments"] = {k: v["members"] for k, v in rebuild_all(site_id, as_of).items()}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _rounded(p: float) -> float | None:
    return None if np.isnan(p) else round(float(p), 4)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, float | np.floating):
        return float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v
