"""Purchase propensity: the probability that a customer orders in the next 30 days, and that
they buy in each of their likeliest categories, learned from the shop's own past.

The model is trained on the shop's history cut at earlier moments: at each cutoff
``c = now − 30 d · k`` (k = 1, 2, …), features describe every customer from their
orders before ``c`` and the label says whether they ordered in ``[c, c + 30 d)``.
A gradient-boosted tree model (scikit-learn's ``HistGradientBoostingClassifier``)
learns from those stacked windows, its scores are calibrated so that "30 %" means
three in ten, and it is then applied to every customer as of ``now``.

Everything works on arrays; no database here (``scores.py`` reads the orders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

HORIZON_DAYS = 30.0
WINDOWS = 6  # stacked training windows (fewer when the history is shorter)
MIN_ROWS = 200  # below this many training rows, or
MIN_POSITIVES = 20  # this many positive labels, the shop is too small to learn from
MAX_ROWS = 300_000  # training rows kept (a seeded sample beyond it), so 100k customers stay fast
CALIBRATION = "holdout-sigmoid"  # chosen by measurement: docs/evaluation.md, "Purchase propensity"
SEED = 0


# ---------------------------------------------------------------- histories


@dataclass
class OrderHistory:
    """Every order of the customers as parallel arrays; ``customer`` indexes 0..n_customers-1."""

    customer: np.ndarray  # int64, per order
    day: np.ndarray  # float64, days on any fixed clock (e.g. unix seconds / 86400)
    total: np.ndarray  # float64
    n_customers: int
    country: np.ndarray | None = None  # int64 per customer: a small code, −1 when unknown

    def __post_init__(self) -> None:
        order = np.lexsort((self.day, self.customer))
        self.customer = np.asarray(self.customer, dtype=np.int64)[order]
        self.day = np.asarray(self.day, dtype=np.float64)[order]
        self.total = np.asarray(self.total, dtype=np.float64)[order]


@dataclass
class CategoryHistory:
    """Each category a customer bought in each order (one row per customer × order × category)."""

    customer: np.ndarray  # int64
    day: np.ndarray  # float64
    category: np.ndarray  # int64, indexes ``names``
    names: list[str]


# ---------------------------------------------------------------- metrics


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: count, mean prediction and observed rate of each."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        out.append({
            "low": b / bins, "high": (b + 1) / bins, "count": n,
            "predicted": float(p[sel].mean()) if n else float("nan"), "observed": float(y[sel].mean()) if n else float("nan"),
        })
    return out


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Σ over equal-width bins of (share of customers in the bin) × |mean prediction − observed rate|."""
    n = len(p)
    if n == 0:
        return float("nan")
    return float(sum(b["count"] / n * abs(b["predicted"] - b["observed"]) for b in reliability(p, y, bins) if b["count"]))


def quality(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """ECE (10 bins), Brier score, AUC, log loss and the mean prediction against the observed rate."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(y, dtype=np.int64)
    both = 0 < y.sum() < len(y)
    return {
        "n": len(y), "positives": int(y.sum()), "rate": float(y.mean()) if len(y) else float("nan"),
        "mean_predicted": float(p.mean()) if len(p) else float("nan"),
        "ece": expected_calibration_error(p, y), "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])) if len(y) else float("nan"),
    }


# ---------------------------------------------------------------- order propensity


ORDER_FEATURES = (
    "log_orders", "recency_days", "tenure_days", "orders_30d", "orders_90d", "orders_180d", "log_avg_order",
    "log_spend_90d", "spend_trend", "gap_mean_days", "gap_cv", "overdue", "country",
)


@dataclass
class CustomerState:
    """What is known of every customer at one cutoff (only customers with an order before it)."""

    customers: np.ndarray  # the customer indexes described
    features: np.ndarray  # (len(customers), len(ORDER_FEATURES)), NaN where undefined


def _per_customer(idx: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(idx, weights=values, minlength=n)


def customer_state(h: OrderHistory, cutoff: float) -> CustomerState:
    """Features of every customer from their orders up to ``cutoff`` (a day on ``h``'s clock)."""
    keep = h.day <= cutoff
    cust, day, total = h.customer[keep], h.day[keep], h.total[keep]
    n = h.n_customers
    count = np.bincount(cust, minlength=n).astype(np.float64)
    present = np.flatnonzero(count > 0)
    if len(present) == 0:
        return CustomerState(present, np.zeros((0, len(ORDER_FEATURES))))
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, cust, day)
    np.maximum.at(last, cust, day)
    age = cutoff - day

    def within(days: float, start: float = 0.0, weights: np.ndarray | None = None) -> np.ndarray:
        sel = (age > start) & (age <= days) if start else age <= days
        return np.bincount(cust[sel], weights=None if weights is None else weights[sel], minlength=n).astype(np.float64)

    spend = _per_customer(cust, total, n)
    # gaps between a customer's consecutive orders (the arrays are sorted by customer, then day)
    same = cust[1:] == cust[:-1]
    gap = (day[1:] - day[:-1])[same]
    gcust = cust[1:][same]
    gaps = np.bincount(gcust, minlength=n).astype(np.float64)
    gsum = _per_customer(gcust, gap, n)
    gsq = _per_customer(gcust, gap * gap, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap_mean = np.where(gaps > 0, gsum / gaps, np.nan)
        gap_std = np.sqrt(np.maximum(gsq / gaps - gap_mean**2, 0.0))
        gap_cv = np.where(gaps >= 2, gap_std / np.maximum(gap_mean, 1e-9), np.nan)
    recency = cutoff - last
    tenure = cutoff - first
    spend_90 = within(90.0, weights=total)
    spend_prev = within(180.0, 90.0, weights=total)

    country = h.country[present].astype(np.float64) if h.country is not None else np.full(len(present), np.nan)
    country[country < 0] = np.nan
    s = present
    feats = np.column_stack([
        np.log1p(count[s]), recency[s], tenure[s], within(30.0)[s], within(90.0)[s], within(180.0)[s],
        np.log1p(np.maximum(spend[s], 0.0) / count[s]), np.log1p(np.maximum(spend_90[s], 0.0)),
        np.log1p(np.maximum(spend_90[s], 0.0)) - np.log1p(np.maximum(spend_prev[s], 0.0)),
        gap_mean[s], gap_cv[s], recency[s] / np.maximum(gap_mean[s], 1.0), country,
    ])
    return CustomerState(present, feats)


def ordered_in(h: OrderHistory, start: float, end: float) -> np.ndarray:
    """Per customer: whether they ordered after ``start`` and up to ``end``."""
    sel = (h.day > start) & (h.day <= end)
    return np.bincount(h.customer[sel], minlength=h.n_customers) > 0


@dataclass
class TrainingSet:
    X: np.ndarray
    y: np.ndarray
    group: np.ndarray  # the customer of each row (for grouped cross-validation)
    window: np.ndarray  # 1 = the newest window


def order_training_set(h: OrderHistory, now: float, windows: int = WINDOWS, horizon: float = HORIZON_DAYS) -> TrainingSet:
    """Stacked windows: at each cutoff ``now − horizon·k`` the customers known by then, labelled by
    whether they ordered in the following ``horizon`` days. Cutoffs need ``horizon`` days of history."""
    start = float(h.day.min()) if len(h.day) else now
    Xs, ys, gs, ws = [], [], [], []
    for k in range(1, windows + 1):
        cutoff = now - horizon * k
        if cutoff - start < horizon:
            break
        state = customer_state(h, cutoff)
        if len(state.customers) == 0:
            continue
        Xs.append(state.features)
        ys.append(ordered_in(h, cutoff, cutoff + horizon)[state.customers])
        gs.append(state.customers)
        ws.append(np.full(len(state.customers), k))
    if not Xs:
        return TrainingSet(np.zeros((0, len(ORDER_FEATURES))), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return TrainingSet(np.vstack(Xs), np.concatenate(ys).astype(np.int64), np.concatenate(gs), np.concatenate(ws))


# ---------------------------------------------------------------- the classifier and its calibration


CALIBRATIONS = ("none", "isotonic", "sigmoid", "holdout-isotonic", "holdout-sigmoid")


def _classifier(categorical: list[int] | None, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=0.06, max_iter=300, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0,
        early_stopping=True, validation_fraction=0.15, n_iter_no_change=20, random_state=seed,
        categorical_features=categorical or None,
    )


@dataclass
class PropensityModel:
    """A fitted, calibrated classifier (``predict`` gives calibrated probabilities) and how it was made."""

    estimator: Any
    calibrator: Any = None  # for held-out calibration: maps raw scores to probabilities
    details: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        if len(X) == 0:
            return np.zeros(0)
        with threadpool_limits(1):  # OpenMP threads made this 12 times slower on a busy 2-core machine (measured)
            p = self.estimator.predict_proba(X)[:, 1]
        if self.calibrator is not None:
            p = self.calibrator(p)
        return np.clip(p, 0.0, 1.0)


def _subsample(ts: TrainingSet, limit: int, seed: int) -> TrainingSet:
    if len(ts.y) <= limit:
        return ts
    pick = np.sort(np.random.default_rng(seed).choice(len(ts.y), limit, replace=False))
    return TrainingSet(ts.X[pick], ts.y[pick], ts.group[pick], ts.window[pick])


def fit_calibrated(ts: TrainingSet, calibration: str = CALIBRATION, categorical: list[int] | None = None, seed: int = SEED) -> PropensityModel | None:
    """Fit the classifier on a training set and calibrate it; ``None`` when there is too little to learn from.

    * ``isotonic`` / ``sigmoid``: ``CalibratedClassifierCV`` with 3 folds grouped by customer
      (a customer's windows stay in one fold, so the calibrator never sees scores of rows
      the model was fitted on);
    * ``holdout-*``: the model learns from the older windows and the calibrator from the
      newest one (which also carries the newest base rate);
    * ``none``: the classifier's own probabilities.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GroupKFold
    from threadpoolctl import threadpool_limits

    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}")
    ts = _subsample(ts, MAX_ROWS, seed)
    positives = int(ts.y.sum())
    if len(ts.y) < MIN_ROWS or positives < MIN_POSITIVES or len(ts.y) - positives < MIN_POSITIVES:
        return None
    details = {"rows": len(ts.y), "positives": positives, "windows": int(ts.window.max()), "calibration": calibration}
    # one thread: deterministic sums, and on a shared small machine OpenMP threads only wait for each other
    with threadpool_limits(1):
        if calibration == "none":
            return PropensityModel(_classifier(categorical, seed).fit(ts.X, ts.y), details=details)
        if calibration.startswith("holdout"):
            older, newest = ts.window > 1, ts.window == 1
            if older.sum() < MIN_ROWS or ts.y[older].sum() < MIN_POSITIVES or len(np.unique(ts.y[newest])) < 2:
                return fit_calibrated(ts, calibration.split("-")[1], categorical, seed)
            est = _classifier(categorical, seed).fit(ts.X[older], ts.y[older])
            raw = est.predict_proba(ts.X[newest])[:, 1]
            return PropensityModel(est, _fit_map(raw, ts.y[newest], calibration.split("-")[1]), details)
        groups = ts.group
        folds = list(GroupKFold(n_splits=3).split(ts.X, ts.y, groups))
        model = CalibratedClassifierCV(_classifier(categorical, seed), method=calibration, cv=folds)
        return PropensityModel(model.fit(ts.X, ts.y), details=details)


def _fit_map(raw: np.ndarray, y: np.ndarray, method: str):
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        return iso.predict
    from sklearn.linear_model import LogisticRegression

    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    lr = LogisticRegression(C=1e6).fit(logit(raw)[:, None], y)
    return lambda p: lr.predict_proba(logit(p)[:, None])[:, 1]


@dataclass
class OrderPropensity:
    """Every customer's probability of ordering within the horizon, as of ``now``."""

    probability: np.ndarray  # per customer index; NaN for customers without an order up to now
    details: dict[str, Any]


def order_propensity(h: OrderHistory, now: float, *, fallback: np.ndarray | None = None, windows: int = WINDOWS,
                     calibration: str = CALIBRATION, horizon: float = HORIZON_DAYS, seed: int = SEED) -> OrderPropensity:
    """Train on the stacked windows before ``now``, then score every customer as of ``now``.

    When the shop is too small to learn from, customers get ``fallback`` (per customer
    index, e.g. BG/NBD's probability) or nothing; ``details["model"]`` says which.
    """
    prob = np.full(h.n_customers, np.nan)
    state = customer_state(h, now)
    if len(state.customers) == 0:
        return OrderPropensity(prob, {"model": "none", "customers": 0})
    ts = order_training_set(h, now, windows, horizon)
    model = fit_calibrated(ts, calibration, _categorical(h, ORDER_FEATURES), seed)
    if model is None:
        if fallback is not None:
            prob[state.customers] = fallback[state.customers]
        summary = {"model": "bgnbd" if fallback is not None else "none", "rows": len(ts.y), "positives": int(ts.y.sum())}
        return OrderPropensity(prob, {**summary, "customers": len(state.customers)})
    prob[state.customers] = model.predict(state.features)
    return OrderPropensity(prob, {"model": "gradient boosting", **model.details, "customers": len(state.customers)})


def _categorical(h: OrderHistory, names: tuple[str, ...]) -> list[int] | None:
    """The country column, as a category of the trees, when some customer's country is known."""
    if h.country is None or not (h.country >= 0).any() or "country" not in names:
        return None
    return [names.index("country")]


# ---------------------------------------------------------------- category propensity


POPULAR = 5  # besides their own categories, each customer is scored on the shop's most bought ones
TOP = 3  # categories kept per customer

CATEGORY_FEATURES = (
    "cat_log_orders", "cat_share", "cat_recency_days", "cat_orders_30d", "cat_orders_90d", "cat_gap_mean_days",
    "cat_overdue", "cat_buyers_30d", "cat_trend", "cat_repeat_rate",
    "log_orders", "recency_days", "tenure_days", "orders_90d", "gap_mean_days", "country",
)
_FROM_CUSTOMER = [ORDER_FEATURES.index(n) for n in CATEGORY_FEATURES[10:]]


@dataclass
class PairState:
    """(customer, category) pairs worth scoring at one cutoff, with their features."""

    customer: np.ndarray
    category: np.ndarray
    features: np.ndarray  # (pairs, len(CATEGORY_FEATURES))


def pair_state(h: OrderHistory, ch: CategoryHistory, cutoff: float, state: CustomerState,
               only: np.ndarray | None = None, popular: int = POPULAR) -> PairState:
    """Pairs of each customer known at ``cutoff`` (or of ``only`` those) with the categories they
    bought before and the ``popular`` categories most bought in the last 90 days."""
    n_cat = len(ch.names)
    keep = ch.day <= cutoff
    key = ch.customer[keep] * n_cat + ch.category[keep]
    day = ch.day[keep]
    order = np.lexsort((day, key))
    key, day = key[order], day[order]
    ukey, start, count = np.unique(key, return_index=True, return_counts=True)
    empty = PairState(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, len(CATEGORY_FEATURES))))
    if len(ukey) == 0 or len(state.customers) == 0:
        return empty
    age = cutoff - day
    last = day[start + count - 1]
    first = day[start]
    in30 = np.add.reduceat((age <= 30.0).astype(np.float64), start)
    in90 = np.add.reduceat((age <= 90.0).astype(np.float64), start)
    in60 = np.add.reduceat(((age > 30.0) & (age <= 60.0)).astype(np.float64), start)
    cat_of = ukey % n_cat
    buyers30 = np.bincount(cat_of[in30 > 0], minlength=n_cat).astype(np.float64)
    buyers_before = np.bincount(cat_of[in60 > 0], minlength=n_cat).astype(np.float64)
    buyers90 = np.bincount(cat_of[in90 > 0], minlength=n_cat)
    buyers = np.bincount(cat_of, minlength=n_cat).astype(np.float64)
    repeat = np.bincount(cat_of[count > 1], minlength=n_cat) / np.maximum(buyers, 1.0)
    known = len(state.customers)
    top = np.argsort(-buyers90, kind="stable")[:popular]
    top = top[buyers90[top] > 0]

    who = state.customers if only is None else only
    mine = np.isin(ukey // n_cat, who)
    cand = np.unique(np.concatenate([ukey[mine], (who[:, None] * n_cat + top[None, :]).ravel()]))
    pos = np.minimum(np.searchsorted(ukey, cand), len(ukey) - 1)
    had = ukey[pos] == cand
    cust, cat = cand // n_cat, cand % n_cat

    row = np.full(h.n_customers, -1)
    row[state.customers] = np.arange(known)
    base = state.features[row[cust]]
    n_orders = np.expm1(base[:, ORDER_FEATURES.index("log_orders")])
    c_count = np.where(had, count[pos], 0.0)
    recency = np.where(had, cutoff - last[pos], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(had & (c_count > 1), (last[pos] - first[pos]) / (c_count - 1), np.nan)
    feats = np.column_stack([
        np.log1p(c_count), c_count / np.maximum(n_orders, 1.0), recency, np.where(had, in30[pos], 0.0), np.where(had, in90[pos], 0.0),
        gap, recency / np.maximum(gap, 1.0), buyers30[cat] / known, np.log1p(buyers30[cat]) - np.log1p(buyers_before[cat]),
        repeat[cat], base[:, _FROM_CUSTOMER],
    ])
    return PairState(cust, cat, feats)


def bought_in(ch: CategoryHistory, start: float, end: float) -> np.ndarray:
    """Sorted keys ``customer · n_categories + category`` of the categories bought after ``start``, up to ``end``."""
    sel = (ch.day > start) & (ch.day <= end)
    return np.unique(ch.customer[sel] * len(ch.names) + ch.category[sel])


def category_training_set(h: OrderHistory, ch: CategoryHistory, now: float, windows: int = WINDOWS,
                          horizon: float = HORIZON_DAYS, seed: int = SEED) -> TrainingSet:
    """Stacked windows of (customer, category) pairs, labelled by a purchase in the category in the
    next ``horizon`` days. Customers are sampled per window so the set stays under ``MAX_ROWS``."""
    start = float(h.day.min()) if len(h.day) else now
    budget = MAX_ROWS // max(windows, 1)
    rng = np.random.default_rng(seed)
    Xs, ys, gs, ws = [], [], [], []
    n_cat = len(ch.names)
    for k in range(1, windows + 1):
        cutoff = now - horizon * k
        if cutoff - start < horizon:
            break
        state = customer_state(h, cutoff)
        if len(state.customers) == 0:
            continue
        per_customer = (np.sum(ch.day <= cutoff) / len(state.customers)) + POPULAR  # a generous estimate of pairs each
        only = None
        if len(state.customers) * per_customer > budget:
            size = max(1, int(budget / per_customer))
            only = np.sort(rng.choice(state.customers, min(size, len(state.customers)), replace=False))
        pairs = pair_state(h, ch, cutoff, state, only)
        if len(pairs.customer) == 0:
            continue
        Xs.append(pairs.features)
        ys.append(np.isin(pairs.customer * n_cat + pairs.category, bought_in(ch, cutoff, cutoff + horizon)))
        gs.append(pairs.customer)
        ws.append(np.full(len(pairs.customer), k))
    if not Xs:
        return TrainingSet(np.zeros((0, len(CATEGORY_FEATURES))), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return TrainingSet(np.vstack(Xs), np.concatenate(ys).astype(np.int64), np.concatenate(gs), np.concatenate(ws))


@dataclass
class CategoryPropensity:
    """Each customer's likeliest categories as of ``now``: ``top`` rows per customer at most."""

    customer: np.ndarray
    category: np.ndarray  # indexes ``names``
    probability: np.ndarray
    names: list[str]
    details: dict[str, Any]
    pairs: PairState | None = None  # every scored pair, with ``scores`` (for evaluation)
    scores: np.ndarray | None = None


def category_propensity(h: OrderHistory, ch: CategoryHistory, now: float, *, top: int = TOP, windows: int = WINDOWS,
                        calibration: str = CALIBRATION, horizon: float = HORIZON_DAYS, seed: int = SEED) -> CategoryPropensity:
    """Train the (customer, category) model on stacked windows before ``now``, score each customer's
    candidate categories as of ``now`` and keep their ``top`` likeliest."""
    none = np.zeros(0, dtype=np.int64)
    if len(ch.names) == 0 or len(ch.customer) == 0:
        return CategoryPropensity(none, none, np.zeros(0), list(ch.names), {"model": "none", "reason": "no categories"})
    ts = category_training_set(h, ch, now, windows, horizon, seed)
    model = fit_calibrated(ts, calibration, _categorical(h, CATEGORY_FEATURES), seed)
    if model is None:
        return CategoryPropensity(none, none, np.zeros(0), list(ch.names),
                                  {"model": "none", "reason": "too little history", "rows": len(ts.y), "positives": int(ts.y.sum())})
    state = customer_state(h, now)
    pairs = pair_state(h, ch, now, state)
    p = np.concatenate([model.predict(pairs.features[i : i + 200_000]) for i in range(0, max(len(pairs.customer), 1), 200_000)])
    order = np.lexsort((pairs.category, -p, pairs.customer))
    cust = pairs.customer[order]
    first = np.r_[True, cust[1:] != cust[:-1]]
    rank = np.arange(len(cust)) - np.maximum.accumulate(np.where(first, np.arange(len(cust)), 0))
    kept = order[rank < top]
    return CategoryPropensity(pairs.customer[kept], pairs.category[kept], p[kept], list(ch.names),
                              {"model": "gradient boosting", **model.details, "pairs": len(pairs.customer)}, pairs, p)
