"""The engine's parts, their candidates and the learned second-stage ranker.

Everything here works on batches of visitors at once, as plain numpy / scipy
arrays, and the server calls the same code with a batch of one: the features a
visitor is ranked with when served are computed exactly as those the ranker was
trained and checked with.

* :class:`Parts` is what is learned from a log up to a moment: item-item
  neighbours (EASE where it fits, sparse cosine above), the item-kNN table, content
  neighbours, popularity (all time, 30-day and 7-day fade, per segment), trend,
  each item's repeat rate and re-purchase rhythm, price, category, first sale.
* :func:`history_batch` turns the histories of a batch of visitors into per
  (visitor, item) and per-visitor statistics (purchase occasions, the visitor's
  own rhythm with each item, recency, RFM-style frequency and spend, ...).
* :func:`candidates` gathers each visitor's candidates from every generator (own
  history, item-item, item-kNN, content, best sellers, trending, popular in the
  visitor's segment) and :func:`features` describes each (visitor, candidate).
* :func:`train` fits a gradient-boosted classifier on time-ordered windows before
  a moment: the label is "bought the candidate in the window". A second, small
  model gives the chance that the visitor buys anything in the window, so that
  the product of the two is a probability of purchase in the next window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .data import CART, PURCHASE, VIEW, InteractionLog, ItemTable
from .gbm import export, export_lightgbm
from .models import (
    DAY,
    content_neighbours,
    cosine_neighbours,
    decay,
    ease_neighbours,
    kind_weights,
    popularity,
    repeat_rate,
    thread_count,
    trend,
    user_item_matrix,
)

NONE = -1.0  # a feature that does not apply (no second purchase, no price, ...)
FAR = 10_000.0  # days since something that never happened; rank of an item a generator did not score

# (name, family): the family is what a reason is read from when this feature moved the score most
FEATURES: tuple[tuple[str, str], ...] = (
    ("item_item", "item-item"), ("item_item_rank", "item-item"),
    ("ease", "item-item"), ("ease_rank", "item-item"),
    ("knn", "item-item"), ("knn_rank", "item-item"),
    ("content", "content"), ("content_rank", "content"),
    ("personal", "personal"), ("personal_rank", "personal"),
    ("occasions", "rhythm"), ("occasions_90", "rhythm"), ("occasion_share", "rhythm"), ("quantity", "rhythm"),
    ("views", "personal"), ("carts", "personal"),
    ("days_since_seen", "personal"), ("days_since_bought", "rhythm"),
    ("own_interval", "rhythm"), ("due_own", "rhythm"), ("due_item", "rhythm"),
    ("segment_popular", "segment"), ("segment_rank", "segment"),
    ("buyers", "popular"), ("popular_30", "popular"), ("popular_7", "trend"), ("trend", "trend"),
    ("repeat_rate", "item"), ("item_interval", "item"), ("price", "item"), ("age_days", "item"),
    ("category_share", "content"), ("imputed", "content"),
    ("u_days_since_bought", "customer"), ("u_days_since_seen", "customer"), ("u_occasions", "customer"), ("u_occasions_90", "customer"),
    ("u_items", "customer"), ("u_tenure", "customer"), ("u_interval", "customer"), ("u_repeat_share", "customer"),
    ("u_lines", "customer"), ("u_spend", "customer"), ("u_basket", "customer"), ("u_view_share", "customer"),
)
FEATURE_NAMES = tuple(name for name, _ in FEATURES)
CUSTOMER_FEATURES = tuple(name for name in FEATURE_NAMES if name.startswith("u_"))
_COL = {name: i for i, name in enumerate(FEATURE_NAMES)}

KIND_WEIGHT = {VIEW: 0.3, CART: 0.6, PURCHASE: 1.0}
HALF_LIFE = 60.0  # days: the fade of a visitor's own interactions when they vote for neighbours


# ----------------------------------------------------------------- the parts
@dataclass
class Parts:
    """What is learned from a log up to ``now``; every array has one entry per catalogue item."""

    now: float
    item_model: str  # "ease", "cosine" or "none"
    neighbours: sp.csr_matrix  # row i: the items i votes for (EASE or cosine)
    knn: sp.csr_matrix  # row i: the targets j that have i among their nearest (item-kNN)
    content: sp.csr_matrix
    buyers: np.ndarray  # distinct buyers, all time
    popular: np.ndarray  # distinct buyers faded with a 30-day half life, max 1
    popular_7: np.ndarray  # the same with 7 days, max 1
    trend: np.ndarray
    repeat_rate: np.ndarray
    interval: np.ndarray  # typical days between two purchases of the item by one customer (NONE: nobody bought twice)
    price: np.ndarray  # NONE when unknown
    first_seen: np.ndarray  # unix seconds of the item's first interaction (inf: none yet)
    category: np.ndarray  # category code (-1: none)
    donor: np.ndarray  # an item never sold borrows the item features of its closest sold look-alike (-1: none)
    donor_similarity: np.ndarray
    segment_names: list[str] = field(default_factory=list)
    segment_popular: np.ndarray | None = None  # segments x items, max 1 per row

    @property
    def n_items(self) -> int:
        return len(self.buyers)

    def borrowed(self, vec: np.ndarray) -> np.ndarray:
        """``vec`` with each never-sold item given its look-alike's value times their similarity."""
        out = np.asarray(vec, dtype=np.float64).copy()
        cold = self.donor >= 0
        out[cold] = out[self.donor[cold]] * self.donor_similarity[cold]
        return out

    @property
    def twins(self) -> sp.csr_matrix:
        """Row ``d``: the never-sold items whose look-alike is ``d`` (a visitor who touched ``d``
        gets them as candidates)."""
        if getattr(self, "_twins", None) is None:
            cold = np.flatnonzero(self.donor >= 0)
            n = self.n_items
            self._twins = sp.csr_matrix((self.donor_similarity[cold], (self.donor[cold], cold)), shape=(n, n))
        return self._twins


def fit_parts(log: InteractionLog, items: ItemTable, now: float, p: dict, user_segments=None, *, content: sp.csr_matrix | None = None) -> Parts:
    """Learn every generator and item statistic from ``log`` rows before ``now`` (all rows when none is later)."""
    if len(log) and log.ts.max() >= now:
        log = log.select(log.ts < now)
    n = len(items)
    binary = user_item_matrix(log, np.ones(len(log)))
    binary.data[:] = 1.0
    if n == 0:
        neighbours = sp.csr_matrix((0, 0), dtype=np.float32)
        model = "none"
    elif n <= p["ease_max_items"]:
        kinds = {VIEW: p["view_weight"], CART: p["cart_weight"], PURCHASE: p["purchase_weight"]}
        x = user_item_matrix(log, kind_weights(log, kinds) * decay(now - log.ts, p["item_half_life_days"]))
        x.data = np.minimum(x.data, 1.0)
        x.eliminate_zeros()
        neighbours = ease_neighbours(x, p["ease_lambda"], int(p["neighbours"]), signed=bool(p["negative_neighbours"]))
        del x
        model = "ease"
    else:
        # one cosine table serves both: each item's nearest (votes) and, transposed, each
        # target's nearest (the item-kNN baseline); the second pass costs as much as the first
        wide = cosine_neighbours(binary, max(int(p["cosine_neighbours"]), int(p["knn_neighbours"])))
        neighbours = _row_top(wide, int(p["cosine_neighbours"]))
        knn = sp.csr_matrix(wide.T)
        del wide
        model = "cosine"
    if model != "cosine":
        knn = sp.csr_matrix(cosine_neighbours(binary, int(p["knn_neighbours"])).T) if n else sp.csr_matrix((0, 0), dtype=np.float32)
    knn.sort_indices()
    del binary
    if content is None:
        content = content_neighbours(items, int(p["content_neighbours"])) if n else sp.csr_matrix((0, 0), dtype=np.float32)
    buys = log.select(log.kind == PURCHASE)
    pairs = user_item_matrix(buys, np.ones(len(buys)))
    buyers = np.asarray((pairs > 0).sum(axis=0), dtype=np.float64).ravel() if n else np.zeros(0)
    first_seen = np.full(n, np.inf)
    if len(log):
        np.minimum.at(first_seen, log.item, log.ts)
    price = np.full(n, NONE)
    if items.prices is not None:
        known = np.isfinite(items.prices) & (items.prices > 0)
        price[known] = items.prices[known]
    cats = np.asarray(items.categories, dtype=object)
    codes = np.full(n, -1, dtype=np.int64)
    named = np.array([bool(c) for c in cats], dtype=bool) if n else np.zeros(0, dtype=bool)
    if named.any():
        _, inv = np.unique(cats[named].astype(str), return_inverse=True)
        codes[named] = inv
    # cold start: an item nobody has bought borrows from its most similar item that sells, if
    # they are near-copies (a new colour or size, the new season's edition)
    donor = np.full(n, -1, dtype=np.int64)
    donor_sim = np.zeros(n)
    if content.nnz:
        cold = np.flatnonzero(buyers == 0)
        if len(cold):
            sub = content[cold].tocoo()
            ok = (buyers[sub.col] > 0) & (sub.data >= float(p["cold_start_similarity"]))
            r, c, v = sub.row[ok], sub.col[ok], sub.data[ok]
            order = np.lexsort((-v, r))
            first = np.ones(len(order), dtype=bool)
            first[1:] = r[order][1:] != r[order][:-1]
            best = order[first]
            donor[cold[r[best]]] = c[best]
            donor_sim[cold[r[best]]] = v[best]
    seg_names: list[str] = []
    seg_pop = None
    if user_segments is not None and len(log):
        names = np.asarray([s or "" for s in user_segments], dtype=object)
        of_row = names[log.user]
        counts: dict[str, int] = {}
        for name in names:
            if name:
                counts[name] = counts.get(name, 0) + 1
        ranked = sorted((c for c in counts.items() if c[1] >= p["min_segment_users"]), key=lambda c: (-c[1], c[0]))
        seg_names = [name for name, _ in ranked[: int(p["max_segments"])]]
        if seg_names:
            seg_pop = np.stack([popularity(log.select(of_row == name), now, p["popular_half_life_days"]) for name in seg_names])
    return Parts(
        now=now, item_model=model, neighbours=neighbours, knn=knn, content=content, buyers=buyers,
        popular=popularity(log, now, p["popular_half_life_days"]), popular_7=popularity(log, now, 7.0),
        trend=trend(log, now), repeat_rate=repeat_rate(log), interval=item_intervals(log),
        price=price, first_seen=first_seen, category=codes, donor=donor, donor_similarity=donor_sim,
        segment_names=seg_names, segment_popular=seg_pop,
    )


def _row_top(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries of a CSR matrix."""
    m = sp.csr_matrix(m)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((-m.data, rows))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - m.indptr[rows[order]]
    keep = rank < k
    out = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
    out.sort_indices()
    return out


def item_intervals(log: InteractionLog) -> np.ndarray:
    """Per item, the typical number of days between two purchases of it by the same customer
    (geometric mean over customers who bought it on two or more occasions; NONE otherwise)."""
    n = log.n_items
    buys = log.select(log.kind == PURCHASE)
    out = np.full(n, NONE)
    if len(buys) == 0:
        return out
    key = buys.user.astype(np.int64) * n + buys.item
    order = np.lexsort((buys.ts, key))
    k, t = key[order], buys.ts[order]
    new = np.ones(len(k), dtype=bool)
    new[1:] = (k[1:] != k[:-1]) | (t[1:] != t[:-1])
    k, t = k[new], t[new]
    start = np.ones(len(k), dtype=bool)
    start[1:] = k[1:] != k[:-1]
    grp = np.cumsum(start) - 1
    count = np.bincount(grp)
    first = t[start]
    last = np.zeros(len(count))
    last[grp] = t  # the last write of each group is its newest occasion
    rep = count >= 2
    if not rep.any():
        return out
    gap = np.maximum((last[rep] - first[rep]) / (count[rep] - 1) / DAY, 0.5)
    item = k[start][rep] % n
    total = np.bincount(item, weights=np.log(gap), minlength=n)
    num = np.bincount(item, minlength=n)
    has = num > 0
    out[has] = np.exp(total[has] / num[has])
    return out


# ----------------------------------------------------------------- histories
@dataclass
class Batch:
    """The histories of a batch of visitors: per (visitor, item) statistics as sorted keys
    (``visitor * n_items + item``) and per-visitor statistics, as of ``now``."""

    size: int
    n_items: int
    now: np.ndarray  # per visitor
    keys: np.ndarray  # sorted, one per (visitor, item) pair in a history
    occasions: np.ndarray
    recent: np.ndarray  # purchase occasions in the last 90 days
    views: np.ndarray
    carts: np.ndarray
    last_seen: np.ndarray
    last_bought: np.ndarray  # -inf: never bought
    first_bought: np.ndarray
    personal: np.ndarray  # kind-weighted, faded interactions
    strongest: np.ndarray  # strongest kind
    qty: np.ndarray
    customer: np.ndarray  # visitors x CUSTOMER_FEATURES
    segment: np.ndarray  # index into Parts.segment_names (-1: none)

    @property
    def rows(self) -> np.ndarray:
        return self.keys // self.n_items

    @property
    def items(self) -> np.ndarray:
        return self.keys % self.n_items


def history_batch(user: np.ndarray, item: np.ndarray, kind: np.ndarray, ts: np.ndarray, qty: np.ndarray, size: int,
                  n_items: int, now, max_history: int, price: np.ndarray | None = None,
                  segment: np.ndarray | None = None) -> Batch:
    """Summarise the interactions of ``size`` visitors (``user`` in 0..size-1) before ``now``
    (one moment, or one per visitor); only each visitor's newest ``max_history`` rows count,
    as when serving."""
    now_v = np.broadcast_to(np.asarray(now, dtype=np.float64), (size,)).copy()
    ok = (item >= 0) & (item < n_items) & (kind >= VIEW) & (kind <= PURCHASE)
    user, item, kind, ts, qty = user[ok].astype(np.int64), item[ok].astype(np.int64), kind[ok].astype(np.int64), ts[ok], qty[ok]
    ok = ts <= now_v[user]
    user, item, kind, ts, qty = user[ok], item[ok], kind[ok], ts[ok], np.maximum(qty[ok], 1.0)
    order = np.lexsort((ts, user))
    user, item, kind, ts, qty = user[order], item[order], kind[order], ts[order], qty[order]
    # keep each visitor's newest max_history rows
    ends = np.searchsorted(user, np.arange(size), side="right")
    keep = (ends[user] - np.arange(len(user))) <= max_history
    user, item, kind, ts, qty = user[keep], item[keep], kind[keep], ts[keep], qty[keep]
    kw = np.zeros(4)
    for k_, w in KIND_WEIGHT.items():
        kw[k_] = w
    key = user * n_items + item
    order = np.lexsort((ts, key))
    key_s, ts_s, kind_s, qty_s, user_s = key[order], ts[order], kind[order], qty[order], user[order]
    start = np.ones(len(key_s), dtype=bool)
    start[1:] = key_s[1:] != key_s[:-1]
    grp = np.cumsum(start) - 1
    keys = key_s[start]
    m = len(keys)
    bought = kind_s == PURCHASE
    # a purchase occasion: a purchase at a moment the pair had no purchase yet
    occ_new = bought.copy()
    prev_buy_ts = np.full(len(key_s), -np.inf)
    if len(key_s):
        idx = np.where(bought, np.arange(len(key_s)), -1)
        idx = np.maximum.accumulate(idx)
        shifted = np.concatenate(([-1], idx[:-1]))
        same = shifted >= 0
        same[same] &= key_s[shifted[same]] == key_s[same]
        prev_buy_ts[same] = ts_s[shifted[same]]
        occ_new &= ts_s != prev_buy_ts
    occasions = np.bincount(grp, weights=occ_new, minlength=m)
    recent = np.bincount(grp, weights=occ_new & (now_v[user_s] - ts_s <= 90 * DAY), minlength=m)
    views = np.bincount(grp, weights=kind_s == VIEW, minlength=m)
    carts = np.bincount(grp, weights=kind_s == CART, minlength=m)
    last_seen = np.full(m, -np.inf)
    np.maximum.at(last_seen, grp, ts_s)
    last_bought = np.full(m, -np.inf)
    first_bought = np.full(m, np.inf)
    if bought.any():
        np.maximum.at(last_bought, grp[bought], ts_s[bought])
        np.minimum.at(first_bought, grp[bought], ts_s[bought])
    age = now_v[user_s] - ts_s
    personal = np.bincount(grp, weights=kw[kind_s] * decay(age, HALF_LIFE), minlength=m)
    strongest = np.zeros(m, dtype=np.int64)
    np.maximum.at(strongest, grp, kind_s)
    q = np.bincount(grp, weights=qty_s * bought, minlength=m)
    # per visitor
    c = np.zeros((size, len(CUSTOMER_FEATURES)))
    col = {name: i for i, name in enumerate(CUSTOMER_FEATURES)}
    pair_user = keys // n_items if m else np.zeros(0, dtype=np.int64)
    has = np.bincount(user, minlength=size) > 0
    last_any = np.full(size, -np.inf)
    first_any = np.full(size, np.inf)
    if len(user):
        np.maximum.at(last_any, user, ts)
        np.minimum.at(first_any, user, ts)
    buy_rows = kind == PURCHASE
    # the visitor's purchase occasions: distinct moments with a purchase
    bu, bt = user[buy_rows], ts[buy_rows]
    moments = np.unique(np.stack([bu, bt]), axis=1) if len(bu) else np.zeros((2, 0))
    n_occ = np.bincount(moments[0].astype(np.int64), minlength=size).astype(np.float64)
    last_buy = np.full(size, -np.inf)
    first_buy = np.full(size, np.inf)
    if moments.shape[1]:
        np.maximum.at(last_buy, moments[0].astype(np.int64), moments[1])
        np.minimum.at(first_buy, moments[0].astype(np.int64), moments[1])
    spend_w = qty[buy_rows] * (np.where(price[item[buy_rows]] > 0, price[item[buy_rows]], 1.0) if price is not None else 1.0)
    spend = np.bincount(bu, weights=spend_w, minlength=size)
    lines = np.bincount(bu, minlength=size).astype(np.float64)
    distinct = np.bincount(pair_user, minlength=size).astype(np.float64)
    bought_pairs = occasions > 0
    again = np.bincount(pair_user[bought_pairs], weights=occasions[bought_pairs] >= 2, minlength=size)
    n_bought = np.bincount(pair_user[bought_pairs], minlength=size)
    views_u = np.bincount(user, weights=kind != PURCHASE, minlength=size)
    total_u = np.bincount(user, minlength=size)
    c[:, col["u_days_since_bought"]] = np.where(n_occ > 0, (now_v - last_buy) / DAY, FAR)
    c[:, col["u_days_since_seen"]] = np.where(has, (now_v - last_any) / DAY, FAR)
    c[:, col["u_occasions"]] = n_occ
    recent_moments = moments[1] >= now_v[moments[0].astype(np.int64)] - 90 * DAY if moments.shape[1] else np.zeros(0, dtype=bool)
    c[:, col["u_occasions_90"]] = np.bincount(moments[0].astype(np.int64)[recent_moments], minlength=size)
    c[:, col["u_items"]] = distinct
    c[:, col["u_tenure"]] = np.where(has, (now_v - first_any) / DAY, 0.0)
    c[:, col["u_interval"]] = np.where(n_occ >= 2, (last_buy - first_buy) / DAY / np.maximum(n_occ - 1, 1), NONE)
    c[:, col["u_repeat_share"]] = np.where(n_bought > 0, again / np.maximum(n_bought, 1), NONE)
    c[:, col["u_lines"]] = lines
    c[:, col["u_spend"]] = np.log1p(spend)
    c[:, col["u_basket"]] = np.where(n_occ > 0, lines / np.maximum(n_occ, 1), 0.0)
    c[:, col["u_view_share"]] = np.where(total_u > 0, views_u / np.maximum(total_u, 1), 0.0)
    return Batch(
        size=size, n_items=n_items, now=now_v, keys=keys, occasions=occasions, recent=recent, views=views, carts=carts,
        last_seen=last_seen, last_bought=last_bought, first_bought=first_bought, personal=personal,
        strongest=strongest, qty=q, customer=c,
        segment=np.full(size, -1, dtype=np.int64) if segment is None else np.asarray(segment, dtype=np.int64),
    )


def log_batch(log: InteractionLog, users: np.ndarray, now, max_history: int, price=None, segment=None) -> Batch:
    """:func:`history_batch` of the given users' rows of ``log`` before ``now``."""
    local = np.full(log.n_users, -1, dtype=np.int64)
    local[users] = np.arange(len(users))
    mask = local[log.user] >= 0
    return history_batch(local[log.user[mask]], log.item[mask], log.kind[mask], log.ts[mask], log.qty[mask],
                         len(users), log.n_items, now, max_history, price, segment)


# ----------------------------------------------------------------- scores of a batch
class _Sparse:
    """A batch x items score matrix as sorted keys (``row * n_cols + col``) and values, with
    O(log nnz) look-ups."""

    def __init__(self, keys: np.ndarray, data: np.ndarray, n_rows: int, n_cols: int):
        self.keys, self.data, self.n_rows, self.n_cols = keys, data, n_rows, n_cols
        self.rowid = keys // n_cols if n_cols else keys
        tops = np.zeros(n_rows)
        if n_rows == 1:  # one visitor (serving): the row's maximum
            if len(data):
                tops[0] = data.max()
        elif len(data):
            starts = np.flatnonzero(np.r_[True, self.rowid[1:] != self.rowid[:-1]])
            tops[self.rowid[starts]] = np.maximum.reduceat(data, starts)
        self.row_max = tops

    @classmethod
    def of(cls, m: sp.spmatrix) -> _Sparse:
        m = sp.csr_matrix(m)
        m.sum_duplicates()
        m.sort_indices()
        n_rows, n_cols = m.shape
        rowid = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(m.indptr))
        return cls(rowid * n_cols + m.indices, m.data.astype(np.float64), n_rows, n_cols)

    @classmethod
    def votes(cls, table: sp.csr_matrix, items: np.ndarray, weights: np.ndarray | None, n_cols: int,
              read: dict | None = None, name: str = "") -> _Sparse:
        """One visitor's votes: the sum of ``weights[h]`` times row ``items[h]`` of ``table``
        (what ``x @ table`` gives for a single row, without scipy's per-call overhead)."""
        return cls.votes_each(table, items, (weights,), n_cols, read, name)[0]

    @classmethod
    def votes_each(cls, table: sp.csr_matrix, items: np.ndarray, weightings, n_cols: int,
                   read: dict | None = None, name: str = "") -> list[_Sparse]:
        """:meth:`votes` for several weightings of the same rows, which are gathered once
        (a weighting of ``None`` weighs every row 1). With ``read``, ``read[name]`` keeps the rows
        read: (position in ``items``, column, value) per entry, for the reasons."""
        starts = table.indptr[items]
        lens = table.indptr[items + 1] - starts
        total = int(lens.sum())
        if total == 0:
            if read is not None:
                read[name] = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
            return [cls(np.zeros(0, dtype=np.int64), np.zeros(0), 1, n_cols) for _ in weightings]
        idx = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens) + np.arange(total)
        targets, values = table.indices.take(idx), table.data.take(idx)
        if read is not None:
            read[name] = (np.repeat(np.arange(len(items)), lens), targets, values)
        out = []
        for weights in weightings:  # None: every row weighs 1 (the product would be the value itself)
            data = np.bincount(targets, weights=values if weights is None else values * np.repeat(weights, lens), minlength=n_cols)
            cols = np.flatnonzero(data)
            out.append(cls(cols.astype(np.int64), data.take(cols), 1, n_cols))
        return out

    def dense(self) -> np.ndarray:
        out = np.zeros(self.n_rows * self.n_cols)
        out[self.keys] = self.data
        return out.reshape(self.n_rows, self.n_cols)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key (0 when absent)."""
        if len(self.keys) == 0:
            return np.zeros(len(keys))
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, self.data[pos], 0.0)

    def top(self, k: int) -> np.ndarray:
        """Keys of each row's ``k`` best positive entries (ties: any of them)."""
        if k <= 0 or len(self.data) == 0:
            return np.zeros(0, dtype=np.int64)
        if self.n_rows == 1:
            if len(self.data) <= k:
                return self.keys[self.data > 0]
            sel = np.argpartition(-self.data, k - 1)[:k]
            return self.keys[sel[self.data[sel] > 0]]
        out = []
        step = max(1, 4_000_000 // max(self.n_cols, 1))
        k = min(k, self.n_cols)
        bounds = np.searchsorted(self.rowid, np.arange(0, self.n_rows + step, step))
        for c, lo in enumerate(range(0, self.n_rows, step)):
            rows = min(step, self.n_rows - lo)
            a, b = bounds[c], bounds[c + 1]
            dense = np.zeros(rows * self.n_cols)
            dense[self.keys[a:b] - lo * self.n_cols] = self.data[a:b]
            dense = dense.reshape(rows, self.n_cols)
            if k < self.n_cols:
                idx = np.argpartition(-dense, k - 1, axis=1)[:, :k]
            else:
                idx = np.broadcast_to(np.arange(self.n_cols), dense.shape)
            vals = np.take_along_axis(dense, idx, axis=1)
            r = np.broadcast_to(np.arange(lo, lo + rows)[:, None], idx.shape)
            keep = vals > 0
            out.append(r[keep].astype(np.int64) * self.n_cols + idx[keep])
        return np.concatenate(out)


@dataclass
class Scores:
    """The generators' scores for a batch (each batch x items, sparse)."""

    item_item: _Sparse
    ease: _Sparse
    knn: _Sparse
    content: _Sparse
    personal: _Sparse
    twins: _Sparse | None = None
    # one visitor's rows of the item-item ("item-item") and content ("content") tables as read
    # for the votes: (position in the history, column, value) per entry
    read: dict = field(default_factory=dict)


def batch_scores(parts: Parts, batch: Batch) -> Scores:
    """Every generator's scores for the batch: votes of the history through each neighbour table."""
    n = parts.n_items
    rows, cols = batch.rows, batch.items
    tops = np.zeros(batch.size)
    if len(rows):
        np.maximum.at(tops, rows, batch.personal)
    scale = np.where(tops > 0, 1.0 / np.where(tops > 0, tops, 1.0), 0.0)
    context = batch.personal * scale[rows]
    personal = _Sparse(batch.keys, batch.personal, batch.size, n)
    empty = _Sparse(np.zeros(0, dtype=np.int64), np.zeros(0), batch.size, n)
    if batch.size == 1:
        read: dict = {}
        if parts.item_model == "ease":
            item_item, ease = _Sparse.votes_each(parts.neighbours, cols, (context, None), n, read, "item-item")
        else:
            item_item, ease = _Sparse.votes(parts.neighbours, cols, context, n, read, "item-item"), empty
        return Scores(
            item_item,
            ease,
            _Sparse.votes(parts.knn, cols, None, n),
            _Sparse.votes(parts.content, cols, context, n, read, "content"),
            personal,
            _Sparse.votes(parts.twins, cols, context, n),
            read,
        )
    ctx = sp.csr_matrix((context, (rows, cols)), shape=(batch.size, n))
    binary = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(batch.size, n))
    ease = _Sparse.of(binary @ parts.neighbours) if parts.item_model == "ease" else empty
    return Scores(_Sparse.of(ctx @ parts.neighbours), ease, _Sparse.of(binary @ parts.knn), _Sparse.of(ctx @ parts.content), personal,
                  _Sparse.of(ctx @ parts.twins))


# ----------------------------------------------------------------- candidates and features
def candidates(parts: Parts, batch: Batch, scores: Scores, p: dict, allowed: np.ndarray | None = None) -> np.ndarray:
    """Each visitor's candidates as sorted keys (``visitor * n_items + item``), from every generator."""
    n = parts.n_items
    size = batch.size
    parts_keys = [
        scores.personal.top(int(p["history_candidates"])),
        scores.item_item.top(int(p["item_candidates"])),
        scores.ease.top(int(p["item_candidates"]) // 2),
        scores.knn.top(int(p["knn_candidates"])),
        scores.content.top(int(p["content_candidates"])),
    ]
    rows = np.arange(size, dtype=np.int64)
    k_pop = int(p["popular_candidates"])
    if scores.twins is not None:
        parts_keys.append(scores.twins.top(int(p["content_candidates"])))
    # best sellers and risers, a never-sold item counting as its look-alike
    for vec in (parts.borrowed(parts.popular), parts.borrowed(parts.popular_7) * parts.trend):
        top = _top_items(vec, k_pop, allowed)
        parts_keys.append((rows[:, None] * n + top[None, :]).ravel())
    if parts.segment_popular is not None:
        seg_top = np.stack([_top_items(v, k_pop, allowed) for v in parts.segment_popular])
        has = batch.segment >= 0
        if has.any():
            parts_keys.append((rows[has][:, None] * n + seg_top[batch.segment[has]]).ravel())
    keys = np.unique(np.concatenate(parts_keys)) if parts_keys else np.zeros(0, dtype=np.int64)
    if allowed is not None and len(keys):
        keys = keys[allowed[keys % n]]
    return keys


def _top_items(vec: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
    v = np.where(allowed, vec, -1.0) if allowed is not None else vec
    k = min(k, len(v))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-v, k - 1)[:k]
    top = top[v[top] > 0]
    return top[np.lexsort((top, -v[top]))].astype(np.int64)


def features(parts: Parts, batch: Batch, scores: Scores, keys: np.ndarray) -> np.ndarray:
    """One row of :data:`FEATURE_NAMES` per candidate key; every value finite."""
    n = parts.n_items
    rows, cols = keys // n, keys % n
    x = np.zeros((len(keys), len(FEATURE_NAMES)))
    now = batch.now[rows]
    donor = parts.donor[cols]
    imputed = donor >= 0
    sim = np.where(imputed, parts.donor_similarity[cols], 1.0)
    src = np.where(imputed, donor, cols)  # where an unsold item's item features come from
    src_keys = rows * n + src
    for name, sparse, row_norm in (("item_item", scores.item_item, True), ("ease", scores.ease, False),
                                   ("knn", scores.knn, False), ("content", scores.content, True), ("personal", scores.personal, True)):
        value = sparse.get(keys)
        if name in ("item_item", "ease", "knn") and imputed.any():
            # an item nobody bought has no neighbours yet: it borrows its look-alike's votes
            value[imputed] = sparse.get(src_keys[imputed]) * sim[imputed]
        if row_norm:
            top = sparse.row_max[rows]
            value = np.where(top > 0, value / np.where(top > 0, top, 1.0), 0.0)
        x[:, _COL[name]] = value
        # rank among the visitor's candidates (0 = this generator's favourite); FAR when it gave nothing
        x[:, _COL[f"{name}_rank"]] = np.where(value > 0, _rank_within_rows(rows, value), FAR)
    # the visitor's own history with the candidate
    pos = np.searchsorted(batch.keys, keys)
    pos = np.minimum(pos, max(len(batch.keys) - 1, 0))
    hit = (batch.keys[pos] == keys) if len(batch.keys) else np.zeros(len(keys), dtype=bool)
    def pick(arr, default):
        return (np.where(hit, arr[pos], default) if len(batch.keys) else np.full(len(keys), default))
    occ = pick(batch.occasions, 0.0)
    last_seen = pick(batch.last_seen, -np.inf)
    last_bought = pick(batch.last_bought, -np.inf)
    first_bought = pick(batch.first_bought, np.inf)
    x[:, _COL["occasions"]] = occ
    x[:, _COL["occasions_90"]] = pick(batch.recent, 0.0)
    u_occ = batch.customer[rows, CUSTOMER_FEATURES.index("u_occasions")]
    x[:, _COL["occasion_share"]] = occ / np.maximum(u_occ, 1.0)
    x[:, _COL["quantity"]] = np.log1p(pick(batch.qty, 0.0))
    x[:, _COL["views"]] = pick(batch.views, 0.0)
    x[:, _COL["carts"]] = pick(batch.carts, 0.0)
    x[:, _COL["days_since_seen"]] = np.where(np.isfinite(last_seen), (now - last_seen) / DAY, FAR)
    since_bought = np.where(np.isfinite(last_bought), (now - last_bought) / DAY, FAR)
    x[:, _COL["days_since_bought"]] = since_bought
    own = np.where(occ >= 2, (last_bought - np.where(np.isfinite(first_bought), first_bought, 0.0)) / DAY / np.maximum(occ - 1, 1), NONE)
    own = np.where(occ >= 2, np.maximum(own, 0.5), NONE)
    x[:, _COL["own_interval"]] = own
    x[:, _COL["due_own"]] = np.where(own > 0, since_bought / np.where(own > 0, own, 1.0), NONE)
    item_iv = parts.interval[src]
    x[:, _COL["due_item"]] = np.where((occ >= 1) & (item_iv > 0), since_bought / np.where(item_iv > 0, item_iv, 1.0), NONE)
    # the item
    if parts.segment_popular is not None:
        seg = batch.segment[rows]
        has = seg >= 0
        sp_val = parts.popular[src].astype(np.float64)
        sp_val[has] = parts.segment_popular[seg[has], src[has]]
        x[:, _COL["segment_popular"]] = sp_val * sim
    else:
        x[:, _COL["segment_popular"]] = parts.popular[src] * sim
    x[:, _COL["segment_rank"]] = _rank_within_rows(rows, x[:, _COL["segment_popular"]])
    x[:, _COL["buyers"]] = np.log1p(parts.buyers[src] * sim)
    x[:, _COL["popular_30"]] = parts.popular[src] * sim
    x[:, _COL["popular_7"]] = parts.popular_7[src] * sim
    x[:, _COL["trend"]] = parts.trend[src]
    x[:, _COL["repeat_rate"]] = parts.repeat_rate[src]
    x[:, _COL["item_interval"]] = item_iv
    x[:, _COL["price"]] = np.where(parts.price[cols] > 0, np.log1p(np.maximum(parts.price[cols], 0.0)), NONE)
    first = parts.first_seen[cols]
    x[:, _COL["age_days"]] = np.where(np.isfinite(first), (now - first) / DAY, NONE)
    x[:, _COL["imputed"]] = imputed * parts.donor_similarity[cols]
    # how much of the visitor's history is in the candidate's category
    cat = parts.category
    if (cat >= 0).any() and len(batch.keys):
        b_rows, b_items = batch.rows, batch.items
        n_cat = int(cat.max()) + 1
        ok = cat[b_items] >= 0
        per = sp.csr_matrix((np.ones(int(ok.sum())), (b_rows[ok], cat[b_items[ok]])), shape=(batch.size, n_cat))
        per.sum_duplicates()
        tot = np.bincount(b_rows, minlength=batch.size).astype(np.float64)
        cc = cat[cols]
        share = np.zeros(len(keys))
        good = cc >= 0
        share[good] = np.asarray(per[rows[good], cc[good]]).ravel() / np.maximum(tot[rows[good]], 1.0)
        x[:, _COL["category_share"]] = np.where(good, share, NONE)
    else:
        x[:, _COL["category_share"]] = NONE
    x[:, [_COL[c] for c in CUSTOMER_FEATURES]] = batch.customer[rows]
    return x


def _rank_within_rows(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """0 for each row's largest value, 1 for the next, ... (``rows`` sorted)."""
    if len(rows) == 0:
        return np.zeros(0)
    if rows[0] == rows[-1]:  # one row (serving): the stable order of -values is what lexsort gives
        rank = np.empty(len(rows))
        rank[np.argsort(-values, kind="stable")] = np.arange(len(rows))
        return rank
    order = np.lexsort((-values, rows))
    starts = np.searchsorted(rows[order], rows[order], side="left")
    rank = np.empty(len(rows))
    rank[order] = np.arange(len(rows)) - starts
    return rank


# ----------------------------------------------------------------- training
@dataclass
class TrainingRows:
    x: np.ndarray
    y: np.ndarray
    group: np.ndarray  # the window and visitor of each row (for sampling)
    customer: np.ndarray  # one row per sampled customer (with or without purchases)
    bought_any: np.ndarray


def window_rows(log: InteractionLog, parts: Parts, start: float, end: float, p: dict, seg_of_user: np.ndarray | None,
                first_seen: np.ndarray, rng: np.random.Generator, tag: int, step: int | None = None,
                past: InteractionLog | None = None) -> TrainingRows | None:
    """Training rows for one window: the customers with a history before ``start`` who bought in
    [start, end), their candidates from ``parts`` (fitted before ``start``) and labels. The
    customers are scored ``step`` at a time (default: 512, fewer on a catalogue over 39,000 items);
    the rows do not depend on it. ``past``: ``log``'s rows before ``start``, when the caller has
    them already (the parts were fitted on them): not copied again."""
    n = parts.n_items
    if past is None:
        past = log.select(log.ts < start)
    inside = (log.ts >= start) & (log.ts < end) & (log.kind == PURCHASE)
    known = np.zeros(log.n_users, dtype=bool)
    known[past.user] = True
    buyers = np.unique(log.user[inside])
    buyers = buyers[known[buyers]]
    if len(buyers) < 5:
        return None
    most = int(p["train_customers"])
    if len(buyers) > most:
        buyers = np.sort(rng.choice(buyers, most, replace=False))
    allowed = first_seen < end  # items that exist by the window's end (offline catalogues hold future ones)
    # scored a few hundred customers at a time: every generator's scores of a customer reach most of
    # a catalogue, so one batch of all of them would hold customers x items entries at once
    step = step or max(16, min(512, 20_000_000 // max(n, 1)))
    xs, ks = [], []
    for lo in range(0, len(buyers), step):
        chunk = buyers[lo:lo + step]
        seg = seg_of_user[chunk] if seg_of_user is not None else None
        batch = log_batch(past, chunk, start, int(p["max_history"]), parts.price, seg)
        scores = batch_scores(parts, batch)
        keys = candidates(parts, batch, scores, p, allowed)
        xs.append(features(parts, batch, scores, keys))
        ks.append(keys + lo * n)
        del batch, scores
    keys = np.concatenate(ks)
    x = np.vstack(xs)
    del xs, ks
    local = np.full(log.n_users, -1, dtype=np.int64)
    local[buyers] = np.arange(len(buyers))
    ins = log.select(inside)
    ok = local[ins.user] >= 0
    truth = np.unique(local[ins.user[ok]] * n + ins.item[ok])
    y = np.isin(keys, truth)
    # customers for the "buys anything" model: buyers and non-buyers, uniformly
    everyone = np.flatnonzero(known)
    sample = np.sort(rng.choice(everyone, min(len(everyone), int(p["activity_customers"])), replace=False))
    cb = log_batch(past, sample, start, int(p["max_history"]), parts.price)
    bought_any = np.isin(sample, np.unique(log.user[inside]))
    return TrainingRows(x, y, tag * 10_000_000 + keys // n, cb.customer, bought_any)


def gather_rows(pieces: list[np.ndarray], index: np.ndarray) -> np.ndarray:
    """Rows ``index`` (sorted) of the pieces stacked, without stacking them all first."""
    out = np.empty((len(index), pieces[0].shape[1]), dtype=pieces[0].dtype)
    start = 0
    for piece in pieces:
        lo, hi = np.searchsorted(index, [start, start + len(piece)])
        out[lo:hi] = piece[index[lo:hi] - start]
        start += len(piece)
    return out


def fit_forest(x: np.ndarray | list[np.ndarray], y: np.ndarray, p: dict, *, small: bool = False, rng: np.random.Generator | None = None,
               group: np.ndarray | None = None, rows: np.ndarray | None = None):
    """Fit the gradient-boosted classifier; returns ``(Forest, predict)`` where ``predict(x)`` gives
    the same probabilities as the Forest, faster for many rows (``(None, None)``: nothing to learn).

    ``x`` may be a list of pieces (the windows' rows, stacked in order) and ``rows`` picks some of
    them (``y`` and ``group`` are then of all rows): only the rows the fit keeps are copied.

    LightGBM fits it when installed (four to five times faster than scikit-learn's
    ``HistGradientBoostingClassifier`` on one core, with the same trees' shape), else
    scikit-learn does. Negatives beyond ``ranker_negatives`` per positive are sampled
    away and the kept ones weigh for those left out, so the probabilities stay
    calibrated while the fit reads far fewer rows. Above ``ranker_early_stop_rows`` rows, 10 % of
    them decide when to stop: after ``ranker_patience`` trees that did not improve their log loss."""
    pieces = x if isinstance(x, list) else [x]
    if rows is not None:
        y = y[rows]
        group = group[rows] if group is not None else None
    else:
        rows = np.arange(len(y))
    if len(y) < 50 or y.all() or not y.any():
        return None, None
    rng = rng or np.random.default_rng(0)
    weight = np.ones(len(y))
    keep = None
    ratio = float(p["ranker_negatives"])
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    most = int(p["ranker_max_rows"])
    if not small and ratio > 0 and (n_neg > ratio * n_pos or n_pos + n_neg > most):
        # at most ``most`` rows: positives too are sampled when there are very many
        pos_p = min(1.0, most / (1.0 + ratio) / max(n_pos, 1))
        neg_p = min(1.0, ratio * n_pos * pos_p / max(n_neg, 1))
        u = rng.random(len(y))
        keep = np.where(y, u < pos_p, u < neg_p)
        rows, y = rows[keep], y[keep]
        weight = np.where(y, 1.0 / pos_p, 1.0 / neg_p)
        if group is not None:
            group = group[keep]
    x = pieces[0] if len(pieces) == 1 and len(rows) == len(pieces[0]) else gather_rows(pieces, rows)
    # the small model ("buys anything", customer features only) keeps its own settings
    trees, rate, patience, stop_rows = (40, 0.1, 10, 10_000) if small else (
        int(p["ranker_trees"]), float(p["ranker_learning_rate"]), int(p["ranker_patience"]), int(p["ranker_early_stop_rows"]))
    try:
        import lightgbm
    except ImportError:
        lightgbm = None
    if lightgbm is not None and p.get("ranker_library", "lightgbm") == "lightgbm":
        held = rng.random(len(y)) < 0.1 if len(y) > stop_rows else np.zeros(len(y), dtype=bool)
        objective = "binary" if small or group is None else p.get("ranker_objective", "binary")
        params = {
            "objective": objective, "learning_rate": rate, "num_leaves": 31,
            "max_depth": int(p["ranker_depth"]), "min_data_in_leaf": int(p["ranker_min_leaf"]), "lambda_l2": 1.0,
            "num_threads": int(p["ranker_threads"]), "verbose": -1, "seed": 0, "deterministic": True, "force_row_wise": True,
        }
        if objective == "lambdarank" and group is not None:
            g = group
            held = np.isin(g, np.unique(g)[np.random.default_rng(1).random(len(np.unique(g))) < 0.1])
            sizes = lambda m: np.unique(g[m], return_counts=True)[1]  # noqa: E731
            train = lightgbm.Dataset(x[~held], y[~held].astype(np.int8), group=sizes(~held), free_raw_data=True)
            valid = [lightgbm.Dataset(x[held], y[held].astype(np.int8), group=sizes(held), reference=train)]
            params["eval_at"] = [20]
        else:
            train = lightgbm.Dataset(x[~held], y[~held].astype(np.int8), weight=weight[~held], free_raw_data=True)
            valid = [lightgbm.Dataset(x[held], y[held].astype(np.int8), weight=weight[held], reference=train)] if held.any() else []
        callbacks = [lightgbm.early_stopping(patience, verbose=False)] if valid else []
        booster = lightgbm.train(params, train, trees, valid_sets=valid, callbacks=callbacks)
        predict_threads = thread_count(int(p["fit_threads"]), 2)  # the self-check predicts with nothing else running
        forest = export_lightgbm(booster)
        return forest, lambda rows: booster.predict(rows, num_iteration=booster.best_iteration or None, num_threads=predict_threads)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingClassifier(
        learning_rate=rate, max_iter=trees,
        max_depth=int(p["ranker_depth"]), max_leaf_nodes=31, min_samples_leaf=int(p["ranker_min_leaf"]),
        l2_regularization=1.0, early_stopping=len(y) > stop_rows, validation_fraction=0.1, n_iter_no_change=patience,
        random_state=0,
    )
    with threadpool_limits(int(p["ranker_threads"]), user_api="openmp"):
        model.fit(x, y.astype(np.int8), sample_weight=weight)
    return export(model), lambda rows: model.predict_proba(rows)[:, 1]
