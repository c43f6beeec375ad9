"""Page-aware strategies: what a product page, a cart, a listing and a "recently viewed" box show.

Plain numpy and scipy, no Flask and no database: a :class:`PageTables` is learned from an
:class:`~personalize.recommend.data.InteractionLog` beside the rest of a model, stored in the
same model file and read by :class:`Pages` at serving time.

* **Frequently bought together** (product page): items bought *in the same order* as the one
  on screen, beyond what their popularity explains. An order is a customer's purchases of one
  moment (the log's ``(user, ts)`` of its purchase rows). With ``C[a, j]`` the number of orders
  holding both ``a`` and ``j`` (each order weighted by ``size ** -gamma``, so a wholesale order
  of 300 lines does not outvote 300 small ones) and ``n[j]`` the orders holding ``j``::

      together(a, j) = C[a, j] / (n[j] + beta) ** alpha

  ``alpha`` 0 is plain co-occurrence counts (best sellers win), 1 is lift (one lucky order
  of a rare item wins); ``beta`` shrinks the lift of rarely bought items towards counts.
  ``alpha``, ``gamma`` and the half life are chosen *per shop at fit time* by measurement: the orders of the
  shop's own most recent window (inside the training data) are held out and each setting of
  a small grid ranks their other items given one; the best recall@10 wins (see
  :func:`choose_together`).
  A small weight of look-alikes (TF-IDF over title, category and description) is added when
  the same measurement prefers it. A second stage can then *learn* the list: gradient-boosted
  trees score each item's best candidates of that setting and its look-alikes from pair
  features (see :func:`choose_learned`); it is served only when it beats the setting on the
  shop's most recent window.
* **Similar items** (product page): items the same people chose (the model's item-kNN, cosine
  over customers), items viewed in the same session (co-view), look-alikes (TF-IDF over title,
  category and description) and bought-together, each scaled to a maximum of 1; the share of
  bought-together against item-kNN and the look-alikes' weight are chosen per shop by the same
  kind of measurement (given the last item a customer bought before the held-out window, what
  they bought in it; :func:`choose_similar`). An item nothing was bought or viewed with yet
  still shows its look-alikes.
* **Cart complements**: the bought-together rows of every cart item, each scaled to a maximum
  of 1 so every item of the cart votes alike; never an item already in the cart.
* **Recently viewed**: the visitor's own views, newest first (no model needed).
* **Rank** (listing and search pages): a given list re-ordered for the visitor: the model's
  scores for those items blended with their position in the given list, so the shop's order
  (relevance, merchandising) still counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import PURCHASE, VIEW, InteractionLog
from .models import decay, entry_blocks, entry_bound, in_threads

DAY = 86400.0

PAGE_PARAMS: dict = {
    "together_neighbours": 100,  # bought-together items kept per item
    "coview_neighbours": 50,  # co-viewed items kept per item
    "together_alpha": None,  # None: chosen per shop by choose_together
    "together_gamma": None,
    "together_beta": 5.0,  # orders added to every item's count before the popularity discount
    "together_half_life_days": None,
    "together_alphas": (0.0, 0.25, 0.5, 1.0),
    "together_gammas": (0.5, 0.0, 1.0),
    "together_half_lives": (0.0, 14.0, 30.0, 90.0),
    "together_validation_days": 30.0,
    "together_validation_anchors": 1500,
    # leaving the setting tried first takes this much more recall (relative): held-out windows are small
    "min_gain": 0.01,
    # look-alikes (TF-IDF) added to bought-together, each row scaled to a maximum of 1
    "together_content_weight": None,  # None: chosen per shop
    "together_content_weights": (0.0, 0.05, 0.1, 0.2),
    # similar items: the bought-together share of (item-kNN, bought together), and the look-alike weight
    "similar_together_share": None,  # None: chosen per shop by choose_similar
    "similar_together_shares": (0.5, 0.0, 0.25, 0.75, 1.0),
    "similar_content_weight": None,
    "similar_content_weights": (0.3, 0.0, 0.1),
    "similar_validation_customers": 1500,
    "coview_session_minutes": 30.0,
    # bought together learned (gradient-boosted trees over pair features): None chooses it by
    # measurement, False never, True whenever there is data to learn from
    "together_learned": None,
    "learned_candidates": 60,  # the best of the counts family per item, beside its look-alikes
    # similar items learned the same way (None: by measurement on the next-items window, False: never)
    "similar_learned": None,
    "similar_learned_candidates": 80,  # the best of the chosen mix per item, its 20 nearest by customers, its look-alikes
    "learned_trees": 150,
    "learned_recent_days": 30.0,
}

# similar items: weights of the scaled parts when the shop's choice does not say (a model from before it)
SIMILAR_WEIGHTS = {"also-chosen": 1.0, "co-view": 1.0, "content": 0.3, "together": 1.0}


def similar_weights(choice: dict) -> dict[str, float]:
    """The weights of the similar-items parts for a shop's choice: item-kNN ``2 (1 - share)``,
    bought together ``2 share``, look-alikes as chosen, co-view 1 (share 0.5 and look-alikes 0.3:
    :data:`SIMILAR_WEIGHTS`)."""
    share = float(choice.get("similar_together_share", 0.5))
    return {"also-chosen": 2.0 * (1.0 - share), "co-view": 1.0,
            "content": float(choice.get("similar_content", SIMILAR_WEIGHTS["content"])), "together": 2.0 * share}


# ----------------------------------------------------------------- orders and sessions
def basket_matrix(log: InteractionLog, kind: int = PURCHASE, session_seconds: float | None = None) -> sp.csr_matrix:
    """Baskets x items, 1 where the basket holds the item.

    ``kind`` PURCHASE: a basket is one order (a user's purchases of one moment). With
    ``session_seconds``, rows of ``kind`` or stronger of one user form one session until a gap
    longer than that (co-view)."""
    return baskets(log, kind, session_seconds)[0]


def baskets(log: InteractionLog, kind: int = PURCHASE, session_seconds: float | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(basket_matrix, each basket's newest moment in unix seconds)``."""
    rows = log.select(log.kind == kind) if session_seconds is None else log.select(log.kind >= kind)
    if len(rows) == 0:
        return sp.csr_matrix((0, log.n_items), dtype=np.float32), np.zeros(0)
    order = np.lexsort((rows.ts, rows.user))
    u, t = rows.user[order].astype(np.int64), rows.ts[order]
    new = np.ones(len(order), dtype=bool)
    if session_seconds is None:
        new[1:] = (u[1:] != u[:-1]) | (t[1:] != t[:-1])
    else:
        new[1:] = (u[1:] != u[:-1]) | (t[1:] - t[:-1] > session_seconds)
    basket = np.cumsum(new) - 1
    m = sp.csr_matrix((np.ones(len(order), dtype=np.float32), (basket, rows.item[order].astype(np.int64))),
                      shape=(int(basket[-1]) + 1, log.n_items))
    m.data[:] = 1.0
    when = np.zeros(m.shape[0])
    np.maximum.at(when, basket, t)
    return m, when


def basket_weights(b: sp.csr_matrix, when: np.ndarray | None, now: float, gamma: float, half_life_days: float) -> np.ndarray:
    """Each basket's weight: ``size ** -gamma``, faded by its age (``half_life_days`` 0: never);
    0 for baskets of one item."""
    size = np.diff(b.indptr).astype(np.float64)
    w = np.where(size >= 2, np.maximum(size, 1.0) ** -gamma, 0.0)
    if half_life_days and when is not None and len(when):
        w *= decay(now - when, half_life_days)
    return w


def _weighted(b: sp.csr_matrix, weights: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(B with each basket's row times its weight, B's transpose as CSR)``; zero-weight baskets dropped."""
    keep = weights > 0
    b = b[keep]
    w = sp.diags(weights[keep].astype(np.float32)) @ b
    return sp.csr_matrix(w), sp.csr_matrix(b.T)


def _top_rows(m: sp.csr_matrix, k: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = sp.csr_matrix(m)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    keep = m.data > 0
    rows, cols, vals = rows[keep], m.indices[keep], m.data[keep]
    order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(rows, np.arange(m.shape[0]))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < k
    return rows[keep] + offset, cols[keep], vals[keep]


def pair_table(b: sp.csr_matrix, k: int, alpha: float, beta: float, weights: np.ndarray, block: int = 4096,
               budget: int = 4_000_000) -> sp.csr_matrix:
    """Row ``a``: the ``k`` items ``j`` with the highest ``C[a, j] / (n[j] + beta) ** alpha``
    (see the module's docstring; ``weights``: each basket's, :func:`basket_weights`), the item
    itself left out. Works in blocks of at most ``block`` items whose rows hold at most about
    ``budget`` entries between them (:func:`models.entry_blocks`)."""
    n_items = b.shape[1]
    count = np.asarray(b.sum(axis=0), dtype=np.float64).ravel()
    w, bt = _weighted(b, weights)
    discount = sp.diags((1.0 / (count + beta) ** alpha).astype(np.float32))
    rows, cols, vals = [], [], []
    for lo, hi in entry_blocks(entry_bound(b), budget, block):
        co = sp.csr_matrix(bt[lo:hi] @ w)
        r = np.repeat(np.arange(hi - lo), np.diff(co.indptr))
        co.data[co.indices == r + lo] = 0.0
        co = co @ discount
        rr, cc, vv = _top_rows(co, k, lo)
        rows.append(rr)
        cols.append(cc)
        vals.append(vv)
    r, c, v = (np.concatenate(x) if x else np.zeros(0) for x in (rows, cols, vals))
    out = sp.csr_matrix((v.astype(np.float32), (r.astype(np.int64), c.astype(np.int64))), shape=(n_items, n_items))
    out.sort_indices()
    return out


# ----------------------------------------------------------------- choosing alpha and gamma
def held_out_pairs(log: InteractionLog, start: float, most: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(anchors, truths)``: for orders from ``start`` on with two items or more, one item of each
    (at random) and the order's other items; at most ``most`` orders (sampled)."""
    later = log.select((log.ts >= start) & (log.kind == PURCHASE))
    b = basket_matrix(later)
    size = np.diff(b.indptr)
    ok = np.flatnonzero(size >= 2)
    if len(ok) > most:
        ok = np.sort(rng.choice(ok, most, replace=False))
    anchors, truths = [], []
    for r in ok:
        items = b.indices[b.indptr[r]:b.indptr[r + 1]]
        a = int(items[rng.integers(len(items))])
        anchors.append(a)
        truths.append(items[items != a])
    return np.asarray(anchors, dtype=np.int64), truths


def recall_at(top: np.ndarray, truths: list[np.ndarray], k: int) -> float:
    """Mean over rows of |top k ∩ truth| / min(k, |truth|)."""
    vals = []
    for row, t in zip(top, truths, strict=True):
        if len(t):
            vals.append(len(set(row[:k].tolist()) & set(t.tolist())) / min(k, len(t)))
    return float(np.mean(vals)) if vals else 0.0


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Per row, the ``k`` best columns (best first; ties to the lower index)."""
    k = min(k, score.shape[1])
    part = np.argpartition(-score, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(score, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _scaled_rows(table: sp.csr_matrix | None, idx: np.ndarray, n: int) -> np.ndarray:
    """Dense rows ``idx`` of ``table``, each scaled to a maximum of 1 (zeros without a table)."""
    if table is None or table.shape != (n, n) or table.nnz == 0:
        return np.zeros((len(idx), n), dtype=np.float32)
    rows = sp.csr_matrix(table)[idx].toarray().astype(np.float32)
    return _scaled(rows)


def _scaled(rows: np.ndarray) -> np.ndarray:
    top = rows.max(axis=1, keepdims=True)
    return rows / np.where(top > 0, top, 1.0).astype(rows.dtype)


def choose_together(log: InteractionLog, now: float, p: dict, content: sp.csr_matrix | None = None) -> dict:
    """The ``alpha``, ``gamma``, half life and look-alike weight of bought-together for this shop,
    by measurement on its most recent ``together_validation_days`` (inside the log: nothing after
    ``now`` is read).

    The orders of that window with two items or more are held out; given one item of each, every
    setting ranks the full catalogue by the orders before the window, and the best recall@10 of
    the order's other items wins. A coordinate search: the half life first (at gamma 0.5,
    alpha 0), then gamma, then alpha, then the weight of the ``content`` look-alikes added to the
    row (each scaled to a maximum of 1). Leaving the setting tried first takes ``min_gain`` more
    recall (relative): a held-out window is small, and a setting better by less is noise. Returns ``{"alpha",
    "gamma", "half_life_days", "content", "recall": {setting: recall@10}, "orders": n}``; the
    defaults when the window holds fewer than 50 such orders."""
    chosen = {"alpha": 0.0, "gamma": 0.5, "half_life_days": 0.0, "content": 0.0, "orders": 0, "recall": {}}
    if len(log) == 0:
        return chosen
    start = now - float(p["together_validation_days"]) * DAY
    # at most 20 million cells per dense score matrix (a large catalogue gets fewer orders)
    most = max(100, min(int(p["together_validation_anchors"]), 20_000_000 // max(log.n_items, 1)))
    anchors, truths = held_out_pairs(log.select(log.ts < now), start, most, np.random.default_rng(7))
    chosen["orders"] = len(anchors)
    if len(anchors) < min(50, most):
        return chosen
    b, when = baskets(log.select(log.ts < start))
    if b.shape[0] == 0:
        return chosen
    count = np.asarray(b.sum(axis=0), dtype=np.float64).ravel()
    tie = count / (count.max() + 1.0) * 1e-6
    bt = sp.csr_matrix(b.T)[anchors]
    beta = float(p["together_beta"])
    rows = np.arange(len(anchors))
    memo: dict[tuple[float, float], np.ndarray] = {}

    def score(half_life: float, gamma: float, alpha: float) -> float:
        label = f"half_life={half_life:g},gamma={gamma:g},alpha={alpha:g}"
        if label not in chosen["recall"]:
            co = memo.get((half_life, gamma))
            if co is None:
                w = basket_weights(b, when, start, gamma, half_life)
                co = memo[(half_life, gamma)] = (bt @ sp.diags(w.astype(np.float32)) @ b).toarray().astype(np.float32)
            s = co / ((count + beta) ** alpha).astype(np.float32)[None, :] + tie.astype(np.float32)[None, :]
            s[rows, anchors] = -np.inf
            chosen["recall"][label] = round(recall_at(top_k(s, 10), truths, 10), 4)
        return chosen["recall"][label]

    gain = 1.0 + float(p["min_gain"])
    best = {"half_life_days": 0.0, "gamma": 0.5, "alpha": 0.0}
    for key, grid in (("half_life_days", p["together_half_lives"]), ("gamma", p["together_gammas"]), ("alpha", p["together_alphas"])):
        top, pick = -1.0, best[key]
        for value in grid:
            trial = {**best, key: float(value)}
            r = score(trial["half_life_days"], trial["gamma"], trial["alpha"])
            if r > top * gain + 1e-9:
                top, pick = r, float(value)
            # keep only the best one's co-occurrence rows (each is anchors x items)
            lead = {**best, key: pick}
            for k in [k for k in memo if k != (lead["half_life_days"], lead["gamma"])]:
                del memo[k]
        best[key] = pick
    chosen.update(best)
    weights = [float(w) for w in p["together_content_weights"] if float(w) > 0]
    if weights and content is not None and content.nnz:
        co = memo[(best["half_life_days"], best["gamma"])]
        base = _scaled(co / ((count + beta) ** best["alpha"]).astype(np.float32)[None, :])
        looks = _scaled_rows(content, anchors, log.n_items)
        top = chosen["recall"][f"half_life={best['half_life_days']:g},gamma={best['gamma']:g},alpha={best['alpha']:g}"]
        for w in weights:
            s = base + np.float32(w) * looks + tie.astype(np.float32)[None, :]
            s[rows, anchors] = -np.inf
            r = chosen["recall"][f"content={w:g}"] = round(recall_at(top_k(s, 10), truths, 10), 4)
            if r > top * gain + 1e-9:
                top, chosen["content"] = r, w
    return chosen


def held_out_next(log: InteractionLog, start: float, most: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(anchors, truths)``: for customers who bought before ``start`` and from ``start`` on, the
    last item bought before (the product page they land on) and the other items bought from
    ``start`` on; at most ``most`` customers (sampled)."""
    buys = log.select(log.kind == PURCHASE)
    before, after = buys.ts < start, buys.ts >= start
    if not before.any() or not after.any():
        return np.zeros(0, dtype=np.int64), []
    # the last purchase row before start of each customer (the latest moment; among its lines the last one)
    idx = np.flatnonzero(before)
    order = idx[np.lexsort((idx, buys.ts[idx], buys.user[idx]))]
    last_of = {}
    for u, i in zip(buys.user[order].tolist(), buys.item[order].tolist(), strict=True):
        last_of[u] = i
    later: dict[int, set[int]] = {}
    for u, i in zip(buys.user[after].tolist(), buys.item[after].tolist(), strict=True):
        if u in last_of:
            later.setdefault(u, set()).add(i)
    users = [u for u in sorted(later) if later[u] - {last_of[u]}]
    if len(users) > most:
        users = sorted(rng.choice(users, most, replace=False).tolist())
    anchors = np.array([last_of[u] for u in users], dtype=np.int64)
    return anchors, [np.array(sorted(later[u] - {last_of[u]}), dtype=np.int64) for u in users]


def choose_similar(log: InteractionLog, now: float, p: dict, together: dict, content: sp.csr_matrix | None = None) -> dict:
    """How similar items mixes its parts for this shop, by measurement on its most recent
    ``together_validation_days`` (nothing after ``now`` is read).

    Held out: the customers who bought both before that window and in it; given the last item
    each bought before (the product page they land on), every setting ranks the full catalogue
    by the purchases before the window, and the best recall@10 of what they bought in it wins.
    The parts: items the same customers chose (cosine over customers), bought together (with the
    ``together`` choice's settings) and the ``content`` look-alikes, each row scaled to a maximum
    of 1. The bought-together share first (at look-alike weight 0.3), then the look-alike weight;
    leaving the setting tried first takes ``min_gain`` more recall (share 0.5 and 0.3 are the
    weights served before this choice). Returns ``{"similar_together_share", "similar_content", "similar_recall",
    "similar_customers"}``; the defaults when fewer than 50 customers are held out."""
    chosen = {"similar_together_share": 0.5, "similar_content": SIMILAR_WEIGHTS["content"], "similar_customers": 0, "similar_recall": {}}
    if len(log) == 0:
        return chosen
    n = log.n_items
    start = now - float(p["together_validation_days"]) * DAY
    most = max(100, min(int(p["similar_validation_customers"]), 20_000_000 // max(n, 1)))
    anchors, truths = held_out_next(log.select(log.ts < now), start, most, np.random.default_rng(7))
    chosen["similar_customers"] = len(anchors)
    if len(anchors) < min(50, most):
        return chosen
    prior = log.select((log.ts < start) & (log.kind == PURCHASE))
    b, when = baskets(prior)
    count = np.asarray(b.sum(axis=0), dtype=np.float64).ravel()
    tie = (count / (count.max(initial=0.0) + 1.0) * 1e-6).astype(np.float32)
    w = basket_weights(b, when, start, float(together["gamma"]), float(together["half_life_days"]))
    co = (sp.csr_matrix(b.T)[anchors] @ sp.diags(w.astype(np.float32)) @ b).toarray().astype(np.float32)
    co /= ((count + float(p["together_beta"])) ** float(together["alpha"])).astype(np.float32)[None, :]
    parts = {"together": _scaled(co)}
    # item-kNN: cosine over customers (who bought the item at all)
    x = sp.csr_matrix((np.ones(len(prior), dtype=np.float32), (prior.user.astype(np.int64), prior.item.astype(np.int64))),
                      shape=(prior.n_users, n))
    x.data[:] = 1.0
    norm = np.sqrt(np.asarray(x.sum(axis=0), dtype=np.float64).ravel())
    norm[norm == 0] = 1.0
    cos = (sp.csr_matrix(x.T)[anchors] @ x).toarray().astype(np.float32) / norm.astype(np.float32)[None, :]
    parts["also-chosen"] = _scaled(cos)
    parts["content"] = _scaled_rows(content, anchors, n)
    rows = np.arange(len(anchors))

    def score(share: float, look: float) -> float:
        label = f"share={share:g},content={look:g}"
        if label not in chosen["similar_recall"]:
            s = (2.0 * (1.0 - share)) * parts["also-chosen"] + (2.0 * share) * parts["together"] + np.float32(look) * parts["content"]
            s += tie[None, :]
            s[rows, anchors] = -np.inf
            chosen["similar_recall"][label] = round(recall_at(top_k(s, 10), truths, 10), 4)
        return chosen["similar_recall"][label]

    gain = 1.0 + float(p["min_gain"])
    best = {"share": 0.5, "look": SIMILAR_WEIGHTS["content"]}
    for key, grid in (("share", p["similar_together_shares"]), ("look", p["similar_content_weights"])):
        top, pick = -1.0, best[key]
        for value in grid:
            r = score(**{**best, key: float(value)})
            if r > top * gain + 1e-9:
                top, pick = r, float(value)
        best[key] = pick
    chosen["similar_together_share"], chosen["similar_content"] = best["share"], best["look"]
    return chosen


# ----------------------------------------------------------------- the learned tables
@dataclass
class PageTables:
    """What the page strategies learn: bought-together and co-view neighbour tables (CSR, one row
    per item, scores of the row's item) and how bought-together was chosen."""

    together: sp.csr_matrix
    coview: sp.csr_matrix
    choice: dict
    # bought together as learned (row a: each candidate's probability of being in a's orders), or None
    learned: sp.csr_matrix | None = None
    # similar items as learned (row a: each candidate's probability of being bought next by a's buyers), or None
    similar: sp.csr_matrix | None = None

    @classmethod
    def empty(cls, n: int) -> PageTables:
        z = sp.csr_matrix((n, n), dtype=np.float32)
        return cls(z, z.copy(), {})


def fit_page_tables(log: InteractionLog, now: float, params: dict | None = None, content: sp.csr_matrix | None = None,
                    threads: int = 1) -> PageTables:
    """Learn bought-together (with this shop's ``alpha``, ``gamma``, half life and look-alike
    weight), how similar items mixes its parts, and co-view from ``log`` rows before ``now``.
    ``content``: the catalogue's look-alike table (TF-IDF neighbours), if any. Once the settings
    are chosen, the counted tables and the two learned ones are made ``threads`` at a time (the
    same tables however many)."""
    p = {**PAGE_PARAMS, **(params or {})}
    if len(log) and log.ts.max() >= now:
        log = log.select(log.ts < now)
    n = log.n_items
    if n == 0 or len(log) == 0:
        return PageTables.empty(n)
    fixed = {name: p[f"together_{name}"] for name in ("alpha", "gamma", "half_life_days", "content_weight")}
    choice = choose_together(log, now, p, content) if any(v is None for v in fixed.values()) else {}
    for name, value in fixed.items():
        if value is not None:
            choice["content" if name == "content_weight" else name] = float(value)
    choice["beta"] = float(p["together_beta"])
    mix = {"similar_together_share": p["similar_together_share"], "similar_content": p["similar_content_weight"]}
    if any(v is None for v in mix.values()):
        choice.update(choose_similar(log, now, p, choice, content))
    for name, value in mix.items():
        if value is not None:
            choice[name] = float(value)

    def counted() -> tuple[sp.csr_matrix, sp.csr_matrix]:
        b, when = baskets(log)
        weights = basket_weights(b, when, now, choice["gamma"], choice["half_life_days"])
        together = pair_table(b, int(p["together_neighbours"]), choice["alpha"], choice["beta"], weights)
        if not (log.kind == VIEW).any():
            return together, sp.csr_matrix((n, n), dtype=np.float32)
        sessions, _ = baskets(log, VIEW, session_seconds=float(p["coview_session_minutes"]) * 60.0)
        # co-view: cosine-like (alpha 0.5 over session counts), sessions weighted by their length
        return together, pair_table(sessions, int(p["coview_neighbours"]), 0.5, 1.0, basket_weights(sessions, None, now, 0.5, 0.0))

    def learned(kind: str) -> tuple[sp.csr_matrix | None, dict]:
        booster, said = choose_learned(log, now, p, choice, content, kind)
        if booster is None:
            return None, said
        snapshot = _Snapshot if kind == "together" else _SimilarSnapshot
        return learned_table(snapshot(log, now, p, choice, content), booster, int(p["together_neighbours"])), said

    tasks = [(counted, ())] + [(learned, (kind,)) for kind in ("together", "similar") if p[f"{kind}_learned"] is not False]
    done = dict(zip([task[1] for task in tasks], in_threads(lambda fn, args: fn(*args), tasks, threads), strict=True))
    together, coview = done[()]
    learned_together, choice["learned"] = done.get(("together",), (None, None))
    similar, choice["similar_learned"] = done.get(("similar",), (None, None))
    for key in ("learned", "similar_learned"):
        if choice[key] is None:
            del choice[key]
    return PageTables(together, coview, choice, learned_together, similar)


# ----------------------------------------------------------------- bought together, learned
# A second stage over the counts family: for each item, its best candidates by the chosen
# counts setting and its look-alikes are scored by gradient-boosted trees on pair features
# (several co-occurrence weightings, both conditional shares, the look-alike score, each item's
# orders all-time and recent, the counts rank), trained on the shop's own earlier window and
# served only when it beats the counts setting on the most recent one.

LEARNED_FEATURES = ("together", "together_scaled", "counts", "counts_share_of_anchor", "counts_share_of_item", "counts_size_weighted",
                    "look_alike", "item_orders", "item_orders_recent", "anchor_orders", "counts_rank", "counts_score")


class _Orders:
    """What every pair feature reads of the orders before ``now``: the orders (baskets x items,
    weighted as the shop's chosen setting, as plain counts, and by size only), each item's
    orders all-time and recent, the popularity discount of the chosen setting, the look-alikes."""

    def __init__(self, log: InteractionLog, now: float, p: dict, choice: dict, content: sp.csr_matrix | None):
        log = log.select(log.ts < now)
        self.n = log.n_items
        self.b, when = baskets(log)
        self.bt = sp.csr_matrix(self.b.T)
        self.weights = [basket_weights(self.b, when, now, choice["gamma"], choice["half_life_days"]).astype(np.float32),
                        basket_weights(self.b, when, now, 0.0, 0.0).astype(np.float32),
                        basket_weights(self.b, when, now, 0.5, 0.0).astype(np.float32)]
        self.orders = np.asarray(self.b.sum(axis=0), dtype=np.float32).ravel()
        recent = when >= now - float(p["learned_recent_days"]) * DAY
        self.recent = np.asarray(self.b[recent].sum(axis=0), dtype=np.float32).ravel() if recent.any() else np.zeros(self.n, np.float32)
        self.discount = (1.0 / (self.orders.astype(np.float64) + choice["beta"]) ** choice["alpha"]).astype(np.float32)
        self.content = content if content is not None and content.shape == (self.n, self.n) and content.nnz else None
        self.tie = (self.orders / (self.orders.max(initial=0.0) + 1.0) * 1e-6).astype(np.float32)
        self.work = entry_bound(self.b)  # at most the entries of an item's co-occurrence row

    def co(self, a: np.ndarray, *weightings: int) -> list[sp.csr_matrix]:
        """Rows ``a`` of the co-occurrence under each of the weightings, sparse (float32, the item itself left out)."""
        left = self.bt[a]
        out = []
        for weighting in weightings:
            m = sp.csr_matrix(left @ sp.diags(self.weights[weighting]) @ self.b)
            m.data = m.data.astype(np.float32)
            out.append(_drop_own(m, a))
        return out

    def blocks(self, anchors: np.ndarray, extra: np.ndarray | None = None, budget: int = 4_000_000, most: int = 4096):
        """``anchors`` (sorted, unique) in blocks whose co-occurrence rows (plus ``extra[a]`` entries
        each) hold at most about ``budget`` entries between them (:func:`models.entry_blocks`)."""
        work = self.work[anchors] + (extra[anchors] if extra is not None else 0.0)
        for lo, hi in entry_blocks(work, budget, most):
            yield anchors[lo:hi]


def _drop_own(m: sp.csr_matrix, a: np.ndarray) -> sp.csr_matrix:
    """``m`` (rows of items ``a``) without each row's own item, indices sorted."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    own = m.indices == a[rows]
    if own.any():
        m.data[own] = 0.0
        m.eliminate_zeros()
    m.sort_indices()
    return m


class _Entries:
    """The entries of a block's sparse rows: the union of the patterns of ``mats`` (CSR, same
    shape, indices sorted), in ``(row, col)`` order, merged in linear time."""

    def __init__(self, mats: list[sp.csr_matrix], n: int):
        union = None
        for bit, m in enumerate(mats):  # each member marks its entries with its own bit
            mark = sp.csr_matrix((np.full(m.nnz, 1 << bit, dtype=np.int8), m.indices, m.indptr), shape=m.shape)
            mark.has_canonical_format = True
            union = mark if union is None else union + mark
        union.sort_indices()  # a sum of sorted rows is sorted already: this only checks
        self.mats, self.n, self.mark = mats, n, union.data
        self.row = np.repeat(np.arange(union.shape[0]), np.diff(union.indptr))
        self.col = union.indices.astype(np.int64)

    def of(self, member: int, data: np.ndarray | None = None) -> np.ndarray:
        """Member ``member``'s values (or ``data``, aligned with its entries) at every entry, 0 where it has none."""
        out = np.zeros(len(self.col), dtype=np.float32)
        out[(self.mark & (1 << member)) != 0] = self.mats[member].data if data is None else data
        return out

    def at(self, m: sp.csr_matrix, where: np.ndarray) -> np.ndarray:
        """``m``'s values (indices sorted) at the entries ``where`` (0 where ``m`` has none)."""
        keys = _keys(m, self.n)
        want = self.row[where].astype(np.int64) * self.n + self.col[where]
        out = np.zeros(len(want), dtype=np.float32)
        if len(keys):
            at = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            found = keys[at] == want
            out[found] = m.data[at[found]]
        return out


def _discounted(co: sp.csr_matrix, discount: np.ndarray) -> sp.csr_matrix:
    """``co`` with each column times its item's popularity discount (float32, indices kept sorted)."""
    out = co.copy()
    out.data = out.data * discount[out.indices]
    return out


def _keys(m: sp.csr_matrix, n: int) -> np.ndarray:
    """Sorted ``row * n + col`` of ``m``'s entries (``m``'s indices sorted)."""
    return np.repeat(np.arange(m.shape[0], dtype=np.int64) * n, np.diff(m.indptr)) + m.indices


def _row_scaled(m: sp.csr_matrix) -> sp.csr_matrix:
    """``m`` with each row divided by its maximum (as :func:`_scaled` does to dense rows: rows whose
    entries are all negative or absent are left as they are)."""
    m = m.copy()
    m.data = m.data.astype(np.float32)
    lengths = np.diff(m.indptr)
    top = np.zeros(m.shape[0], dtype=np.float32)
    filled = np.flatnonzero(lengths)
    if len(filled):
        top[filled] = np.maximum.reduceat(m.data, m.indptr[filled])
    top = np.where(top > 0, top, np.float32(1.0)).astype(np.float32)
    m.data /= np.repeat(top, lengths)
    return m


def _content_rows(content: sp.csr_matrix | None, a: np.ndarray, n: int) -> sp.csr_matrix:
    """Rows ``a`` of the look-alike table, each scaled to a maximum of 1 (empty without a table)."""
    if content is None or content.shape != (n, n) or content.nnz == 0:
        return sp.csr_matrix((len(a), n), dtype=np.float32)
    rows = sp.csr_matrix(content)[a]
    rows.sum_duplicates()
    rows.sort_indices()
    return _row_scaled(rows)


def _positions(e: _Entries, score: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Each entry's place in its row among the ``eligible`` entries ordered by ``score`` (highest
    first, ties to the lower item); ``-1`` for entries not eligible."""
    idx = np.flatnonzero(eligible)  # in (row, col) order
    by_score = idx[np.argsort(-score[idx], kind="stable")]  # ties keep the lower item first
    rows = e.row[by_score]
    order = by_score[np.argsort(rows.astype(np.int16) if len(e.mark) and e.row[-1] < 2 ** 15 else rows, kind="stable")]  # radix
    rows = e.row[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    out = np.full(len(e.col), -1, dtype=np.int64)
    out[order] = np.arange(len(order)) - first
    return out


def _joined(out: list[tuple[np.ndarray, np.ndarray, np.ndarray]], width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(anchors, candidates, features)`` of every anchor's rows, one after another."""
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, width), np.float32)
    a, c, x = zip(*out, strict=True)
    return np.concatenate(a), np.concatenate(c), np.vstack(x)


class _Snapshot(_Orders):
    """The pair features of bought together."""

    base = LEARNED_FEATURES.index("counts_rank")  # the column ranking as the counts setting does (lower first)

    def __init__(self, log: InteractionLog, now: float, p: dict, choice: dict, content: sp.csr_matrix | None):
        super().__init__(log, now, p, choice, content)
        self.look = float(choice.get("content", 0.0) or 0.0)
        self.candidates = int(p["learned_candidates"])

    def pairs(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(anchor, candidate, features)`` for every candidate of every anchor (anchors may repeat),
        anchors and each anchor's candidates in ascending order. A candidate is one of the anchor's
        ``learned_candidates`` best by the counts setting (bought with it), or a look-alike; its rank
        is its place in that order (``learned_candidates`` beyond it). Sparse: only items bought with
        an anchor, or like it, are ever looked at."""
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        n = self.n
        k = min(self.candidates, n - 1)
        for a in self.blocks(np.unique(anchors)):
            co = self.co(a, 0, 1, 2)
            chosen = _discounted(co[0], self.discount)
            scaled = _row_scaled(chosen)
            looks = _content_rows(self.content, a, n)
            e = _Entries([chosen, looks], n)
            v_chosen, v_scaled, v_looks = e.of(0), e.of(0, scaled.data), e.of(1)
            base = v_scaled + np.float32(self.look) * v_looks + self.tie[e.col]
            place = _positions(e, base, e.col != a[e.row])
            keep = (((place >= 0) & (place < k) & (v_chosen > 0)) | (v_looks > 0)) & (e.col != a[e.row])
            if not keep.any():
                continue
            cand, ai = e.col[keep], a[e.row[keep]]
            c1, c2 = e.at(co[1], keep), e.at(co[2], keep)
            rank = np.where((place[keep] >= 0) & (place[keep] < k), place[keep], k).astype(np.float32)
            x = np.column_stack([
                v_chosen[keep], v_scaled[keep], c1, c1 / (self.orders[ai] + np.float32(1.0)), c1 / (self.orders[cand] + np.float32(1.0)),
                c2, v_looks[keep], self.orders[cand], self.recent[cand], self.orders[ai], rank, base[keep]]).astype(np.float32)
            out.append((ai.astype(np.int64), cand.astype(np.int64), x))
        return _joined(out, len(LEARNED_FEATURES))


def _labelled(snap: _Snapshot, anchors: np.ndarray, truths: list[np.ndarray]):
    """Rows (one per held-out anchor and candidate) with their labels (in the order or not); repeated
    anchors get their rows repeated."""
    a, c, x = snap.pairs(anchors)
    starts = np.searchsorted(a, np.unique(a))
    where = dict(zip(np.unique(a).tolist(), zip(starts.tolist(), np.append(starts[1:], len(a)).tolist(), strict=True), strict=True))
    xs, ys, groups = [], [], []
    for anchor, truth in zip(anchors.tolist(), truths, strict=True):
        lo, hi = where.get(anchor, (0, 0))
        if hi > lo:
            xs.append(x[lo:hi])
            ys.append(np.isin(c[lo:hi], truth).astype(np.float32))
            groups.append((anchor, c[lo:hi]))
    return (np.vstack(xs) if xs else x[:0]), (np.concatenate(ys) if ys else np.zeros(0, np.float32)), groups


def _recall_of(scores: np.ndarray, groups, truths: list[np.ndarray], k: int = 10) -> float:
    vals, lo = [], 0
    for (_anchor, cand), truth in zip(groups, truths, strict=False):
        s = scores[lo:lo + len(cand)]
        lo += len(cand)
        top = cand[np.lexsort((cand, -s))][:k]
        vals.append(len(set(top.tolist()) & set(truth.tolist())) / min(k, len(truth)))
    return float(np.mean(vals)) if vals else 0.0


def _fit_trees(x: np.ndarray, y: np.ndarray, trees: int):
    import lightgbm

    params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 50, "num_threads": 1,
              "deterministic": True, "force_row_wise": True, "seed": 7, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(x, y), trees)


def choose_learned(log: InteractionLog, now: float, p: dict, choice: dict, content: sp.csr_matrix | None, kind: str = "together"):
    """Whether this shop's bought together (``kind`` "together") or similar items ("similar") is
    served learned: trees fitted on the window before the most recent one (features from the
    orders before it) rank the most recent window's cases (features from the orders before that);
    they are served only when their recall@10 there beats the chosen fixed setting's by
    ``min_gain`` (relative), and are then refitted with both windows. A case of bought together
    is one item of an order and its other items; of similar items, the last item a customer
    bought before the window and what they bought in it. Returns ``(booster or None,
    {"serve", "recall", "orders" or "customers"})``."""
    days = float(p["together_validation_days"]) * DAY
    s2 = now - days
    s1 = s2 - days
    fixed = "counts family" if kind == "together" else "chosen mix"
    counted = "orders" if kind == "together" else "customers"
    said = {"serve": False, "recall": {}, counted: 0}
    try:
        import lightgbm  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency; a trimmed install serves the fixed settings
        said["why"] = "LightGBM is not installed"
        return None, said
    most_key = "together_validation_anchors" if kind == "together" else "similar_validation_customers"
    most = max(100, min(int(p[most_key]), 20_000_000 // max(log.n_items, 1)))
    held_out = held_out_pairs if kind == "together" else held_out_next
    snapshot = _Snapshot if kind == "together" else _SimilarSnapshot
    before = log.select(log.ts < now)
    anchors_a, truths_a = held_out(before.select(before.ts < s2), s1, 2 * most, np.random.default_rng(11))
    anchors_b, truths_b = held_out(before, s2, most, np.random.default_rng(7))
    said[counted] = len(anchors_b)
    if len(anchors_a) < 50 or len(anchors_b) < 50:
        said["why"] = f"fewer than 50 held-out {counted} in one of the two most recent windows"
        return None, said
    snap_a, snap_b = snapshot(log, s1, p, choice, content), snapshot(log, s2, p, choice, content)
    xa, ya, _ = _labelled(snap_a, anchors_a, truths_a)
    xb, yb, groups_b = _labelled(snap_b, anchors_b, truths_b)
    if ya.sum() < 20 or not len(groups_b):
        said["why"] = "too few held-out pairs to learn from"
        return None, said
    have = {g[0] for g in groups_b}
    kept_b = [t for (a, t) in zip(anchors_b.tolist(), truths_b, strict=True) if a in have]
    trees = _fit_trees(xa, ya, int(p["learned_trees"]))
    # every held-out case counts, the ones without candidates as misses (both methods alike)
    share = len(groups_b) / len(anchors_b)
    base = _recall_of(-xb[:, snapshot.base], groups_b, kept_b) * share
    learned = _recall_of(trees.predict(xb), groups_b, kept_b) * share
    said["recall"] = {fixed: round(base, 4), "learned": round(learned, 4)}
    wanted = p[f"{kind}_learned"] is True or learned > base * (1.0 + float(p["min_gain"])) + 1e-9
    if not wanted:
        return None, said
    said["serve"] = True
    return _fit_trees(np.vstack([xa, xb]), np.concatenate([ya, yb]), int(p["learned_trees"])), said


SIMILAR_FEATURES = ("together_scaled", "together", "counts", "counts_share_of_anchor", "also_chosen_scaled", "also_chosen",
                    "look_alike", "item_orders", "item_orders_recent", "item_buyers", "item_rows_per_buyer", "anchor_orders",
                    "mix_rank", "mix_score")


class _SimilarSnapshot(_Orders):
    """The features of similar items: bought together (the shop's chosen setting, and plain
    counts), items the same customers chose (cosine over customers), look-alikes, each
    candidate's orders (all-time and recent), buyers and rows per buyer (a staple is bought again
    and again), and its rank and score in the chosen mix."""

    base = SIMILAR_FEATURES.index("mix_rank")

    def __init__(self, log: InteractionLog, now: float, p: dict, choice: dict, content: sp.csr_matrix | None):
        super().__init__(log, now, p, choice, content)
        buys = log.select((log.ts < now) & (log.kind == PURCHASE))
        x = sp.csr_matrix((np.ones(len(buys), dtype=np.float32), (buys.user.astype(np.int64), buys.item.astype(np.int64))),
                          shape=(max(buys.n_users, 1), self.n))
        self.rows_per_item = np.asarray(x.sum(axis=0), dtype=np.float32).ravel()
        x.data[:] = 1.0
        self.x, self.xt = x, sp.csr_matrix(x.T)
        self.buyers = np.asarray(x.sum(axis=0), dtype=np.float32).ravel()
        self.norm = np.sqrt(np.maximum(self.buyers, 1.0)).astype(np.float32)
        self.weights_mix = similar_weights(choice)
        self.candidates = int(p["similar_learned_candidates"])
        self.cos_work = entry_bound(x)  # at most the entries of an item's row of cos

    def pairs(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(anchor, candidate, features)``, as :meth:`_Snapshot.pairs`: a candidate is one of the
        anchor's ``similar_learned_candidates`` best in the chosen mix (beyond the popularity tie),
        one of its 20 nearest by the customers who chose both, or a look-alike."""
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        n = self.n
        w = self.weights_mix
        k = min(self.candidates, n - 1)
        near = min(20, n - 1)
        if k <= 0:
            return _joined(out, len(SIMILAR_FEATURES))
        for a in self.blocks(np.unique(anchors), self.cos_work):
            chosen, counts = self.co(a, 0, 1)
            chosen = _discounted(chosen, self.discount)
            cos = sp.csr_matrix(self.xt[a] @ self.x)
            cos.data = cos.data.astype(np.float32)
            cos = _drop_own(cos, a)
            rows = np.repeat(np.arange(len(a)), np.diff(cos.indptr))
            cos.data = cos.data / self.norm[cos.indices] / self.norm[a][rows]
            s_chosen, s_cos = _row_scaled(chosen), _row_scaled(cos)
            looks = _content_rows(self.content, a, n)
            e = _Entries([chosen, cos, looks], n)
            v_s_chosen, v_chosen, v_s_cos, v_cos, v_looks = e.of(0, s_chosen.data), e.of(0), e.of(1, s_cos.data), e.of(1), e.of(2)
            tie = self.tie[e.col]
            mix = w["also-chosen"] * v_s_cos + w["together"] * v_s_chosen + w["content"] * v_looks + tie
            own = e.col == a[e.row]
            place = _positions(e, mix, (mix > tie + 1e-12) & ~own)  # something beyond the tie
            ordered = (place >= 0) & (place < k)
            nearest = _positions(e, v_cos, (v_cos > 0) & ~own)
            keep = (ordered | ((nearest >= 0) & (nearest < near)) | (v_looks > 0)) & ~own
            if not keep.any():
                continue
            cand, ai = e.col[keep], a[e.row[keep]]
            c = e.at(counts, keep)
            rank = np.where(ordered[keep], place[keep], k).astype(np.float32)
            x = np.column_stack([
                v_s_chosen[keep], v_chosen[keep], c, c / (self.orders[ai] + np.float32(1.0)), v_s_cos[keep], v_cos[keep],
                v_looks[keep], self.orders[cand], self.recent[cand], self.buyers[cand],
                self.rows_per_item[cand] / np.maximum(self.buyers[cand], np.float32(1.0)), self.orders[ai], rank,
                mix[keep]]).astype(np.float32)
            out.append((ai.astype(np.int64), cand.astype(np.int64), x))
        return _joined(out, len(SIMILAR_FEATURES))


def learned_table(snap, trees, k: int, chunk: int = 4096) -> sp.csr_matrix:
    """Row ``a``: the ``k`` candidates of ``a`` with the highest predicted probability (features
    built and scored ``chunk`` items at a time, so memory stays flat on a large catalogue)."""
    n = snap.n
    rows, cols, vals = [], [], []
    for lo in range(0, n, chunk):
        a, c, x = snap.pairs(np.arange(lo, min(n, lo + chunk)))
        if not len(a):
            continue
        prob = np.maximum(trees.predict(x).astype(np.float32), 1e-9)
        r, cc, v = _top_rows(sp.csr_matrix((prob, (a - lo, c)), shape=(min(n, lo + chunk) - lo, n)), k, lo)
        rows.append(r)
        cols.append(cc)
        vals.append(v)
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    out = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64))),
                        shape=(n, n))
    out.sort_indices()
    return out


def describe_pages(choice: dict) -> str:
    """The product-page choices in the owner's words, e.g. "Product pages: bought together is
    learned (20.1 % vs 19.8 % for counts on the last 30 days); similar items use the fixed mix
    (learned 12.7 % vs 12.7 %)." Empty when nothing was measured."""
    parts = []
    for key, what, fixed in (("learned", "bought together", "counts family"), ("similar_learned", "similar items", "chosen mix")):
        said = choice.get(key) or {}
        recall = said.get("recall") or {}
        if "learned" not in recall:
            continue
        figures = f"{recall['learned']:.1%} vs {recall[fixed]:.1%}"
        if said.get("serve"):
            parts.append(f"{what} learned ({figures} for the fixed settings, recall@10 on the last 30 days)")
        else:
            parts.append(f"{what} on fixed settings (learned {figures}: not ahead by 1 %)")
    return ("Product pages: " + "; ".join(parts) + ".") if parts else ""


# ----------------------------------------------------------------- serving
@dataclass(frozen=True)
class PagePick:
    """One item of a page strategy's list: index, score, reason and the part that chose it."""

    item: int
    score: float
    reason: str
    source: str


def _row(table: sp.csr_matrix, i: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    if table is None or table.shape[0] != n or not 0 <= i < n:
        return out
    lo, hi = table.indptr[i], table.indptr[i + 1]
    out[table.indices[lo:hi]] = table.data[lo:hi]
    m = out.max(initial=0.0)
    if m > 0:
        out /= m
    return out


def _best(score: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    s = np.where(allowed, score, -np.inf)
    cand = np.flatnonzero(s > 0)
    if len(cand) > k:
        cand = cand[np.argpartition(-s[cand], k - 1)[:k]]
    return cand[np.lexsort((cand, -s[cand]))][:k]


class Pages:
    """The page strategies over one fitted catalogue.

    ``titles[i]`` names item ``i`` in reasons; ``in_stock`` masks what may be shown;
    ``also_chosen`` is the model's item-kNN table (row ``i``: items the same customers chose),
    ``content`` its look-alike table, ``popular`` its best-seller scores (fills short lists)."""

    def __init__(self, tables: PageTables, titles: list[str], in_stock: np.ndarray, also_chosen: sp.csr_matrix,
                 content: sp.csr_matrix, popular: np.ndarray):
        self.tables = tables
        self.titles = titles
        self.in_stock = np.asarray(in_stock, dtype=bool)
        self.also_chosen = also_chosen
        self.content = content
        self.popular = np.asarray(popular, dtype=np.float64)
        self.n = len(titles)
        # ties (one order each, say) go to the better seller
        self._tie = self.popular / (self.popular.max(initial=0.0) + 1.0) * 1e-6

    def _ties(self, score: np.ndarray) -> np.ndarray:
        return np.where(score > 0, score + self._tie, score)

    def _allowed(self, exclude) -> np.ndarray:
        allowed = self.in_stock.copy()
        idx = np.fromiter((int(i) for i in exclude), dtype=np.int64)
        idx = idx[(idx >= 0) & (idx < self.n)]
        allowed[idx] = False
        return allowed

    def _fill(self, out: list[PagePick], allowed: np.ndarray, k: int) -> list[PagePick]:
        """Best sellers after the strategy's own items, when it found fewer than ``k``."""
        if len(out) < k:
            allowed = allowed.copy()
            allowed[[p.item for p in out]] = False
            pop = self.popular / (self.popular.max(initial=0.0) + 1.0) * 1e-3
            for j in _best(pop, allowed, k - len(out)).tolist():
                out.append(PagePick(j, float(pop[j]), "Popular right now", "popular"))
        return out

    def together(self, item: int, k: int, exclude=(), fill: bool = True) -> list[PagePick]:
        """Frequently bought together with ``item`` (never ``item`` itself)."""
        allowed = self._allowed([*exclude, item])
        title = self.titles[item] if 0 <= item < self.n else ""
        learned = _row(self.tables.learned, item, self.n)
        if learned.any():
            # the learned table: bought with the item if any order held both, else a look-alike
            counted = _row(self.tables.together, item, self.n) > 0
            score = self._ties(learned)
            out = [PagePick(j, float(score[j]), f"Frequently bought with {title}", "together") if counted[j]
                   else PagePick(j, float(score[j]), f"Similar to {title}", "content") for j in _best(score, allowed, k).tolist()]
            return self._fill(out, allowed, k) if fill else out
        bought = _row(self.tables.together, item, self.n)
        look = float(self.tables.choice.get("content", 0.0) or 0.0)
        looks = look * _row(self.content, item, self.n) if look > 0 else np.zeros(self.n)
        score = self._ties(bought + looks)
        out = [PagePick(j, float(score[j]), f"Frequently bought with {title}", "together") if bought[j] >= looks[j]
               else PagePick(j, float(score[j]), f"Similar to {title}", "content") for j in _best(score, allowed, k).tolist()]
        return self._fill(out, allowed, k) if fill else out

    def similar(self, item: int, k: int, exclude=(), fill: bool = True) -> list[PagePick]:
        """Items like ``item``: chosen by the same customers, viewed in the same sessions, look-alikes."""
        allowed = self._allowed([*exclude, item])
        parts = {
            "also-chosen": _row(self.also_chosen, item, self.n),
            "co-view": _row(self.tables.coview, item, self.n),
            "content": _row(self.content, item, self.n),
            "together": _row(self.tables.together, item, self.n),
        }
        weights = similar_weights(self.tables.choice)
        learned = _row(self.tables.similar, item, self.n)
        if learned.any():
            # learned from purchases; co-view (not in its features) keeps its weight beside it, and
            # each pick is said by the part that scores it highest
            score = self._ties(learned + weights["co-view"] * parts["co-view"])
            weights = dict.fromkeys(weights, 1.0)
        else:
            score = self._ties(sum(weights[name] * vec for name, vec in parts.items()))
        title = self.titles[item] if 0 <= item < self.n else ""
        reasons = {
            "also-chosen": f"Customers who chose {title} also chose this",
            "co-view": f"Customers who viewed {title} also viewed this",
            "content": f"Similar to {title}",
            "together": f"Frequently bought with {title}",
        }
        names = list(parts)
        stacked = np.stack([weights[name] * parts[name] for name in names])
        out = []
        for j in _best(score, allowed, k).tolist():
            # a learned pick no stored part scores came from the customers' cosine rows (the stored
            # item-kNN table keeps each item's nearest only)
            source = names[int(np.argmax(stacked[:, j]))] if stacked[:, j].max() > 0 else "also-chosen"
            out.append(PagePick(j, float(score[j]), reasons[source], source))
        if len(out) < k:
            # a new item (nothing bought or viewed with it yet) still shows its look-alikes
            rest = allowed.copy()
            rest[[p.item for p in out]] = False
            looks = self._ties(parts["content"]) * 1e-3
            out += [PagePick(j, float(looks[j]), reasons["content"], "content") for j in _best(looks, rest, k - len(out)).tolist()]
        return self._fill(out, allowed, k) if fill else out

    def complements(self, cart: list[int], k: int, exclude=(), fill: bool = True) -> list[PagePick]:
        """What goes with the items of ``cart``; never one of them."""
        cart = [i for i in dict.fromkeys(int(c) for c in cart) if 0 <= i < self.n]
        allowed = self._allowed([*exclude, *cart])
        score = np.zeros(self.n)
        votes = np.zeros((len(cart), self.n))
        for r, i in enumerate(cart):
            votes[r] = _row(self.tables.together, i, self.n)
            # what the same customers chose, weakly: for cart items with few orders of their own
            votes[r] += 0.1 * _row(self.also_chosen, i, self.n)
        if len(cart):
            score = self._ties(votes.sum(axis=0))
        out = []
        for j in _best(score, allowed, k).tolist():
            cause = cart[int(np.argmax(votes[:, j]))]
            out.append(PagePick(j, float(score[j]), f"Goes with {self.titles[cause]} in your cart", "together"))
        return self._fill(out, allowed, k) if fill else out

    @staticmethod
    def recently_viewed(history_items: np.ndarray, history_kinds: np.ndarray, k: int, exclude=()) -> list[PagePick]:
        """The visitor's viewed items, newest first (history oldest first), each once."""
        skip = {int(e) for e in exclude}
        out: list[PagePick] = []
        seen: set[int] = set()
        for i, kind in zip(np.asarray(history_items)[::-1].tolist(), np.asarray(history_kinds)[::-1].tolist(), strict=True):
            if kind != VIEW or i < 0 or i in seen or i in skip:
                continue
            seen.add(i)
            out.append(PagePick(i, float(k - len(out)), "You viewed this recently", "recent"))
            if len(out) == k:
                break
        return out


def rerank(scores: np.ndarray, given_weight: float = 0.5) -> np.ndarray:
    """The order in which to show a given list: ``scores`` (one per listed item, the model's; 0 when
    it knows nothing) scaled to a maximum of 1, plus ``given_weight`` x the item's place in the
    given list (1 for the first, falling to 0). Ties keep the given order. Returns positions."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.where(np.isfinite(s) & (s > 0), s, 0.0)
    m = s.max()
    if m > 0:
        s = s / m
    place = 1.0 - np.arange(n) / max(n, 1)
    total = s + given_weight * place
    return np.lexsort((np.arange(n), -total))
