"""Choosing the engine's blend on a validation window just before ``now``.

The window is the ``validation_days`` before ``now``; the parts are fitted on
what came before it, and the customers who bought something in the window are
ranked in both evaluation views (see :mod:`personalize.recommend.evaluate`):

1. "new" view (items the customer bought before are hidden): only the
   neighbour, content and popularity parts can rank, so their weights relative
   to each other, the history half life they read, and the popularity half life
   are chosen here;
2. "all" view: the personal part's half life, the repeat-rate and trend exponents and the
   weight of the group parts (kept in the ratio found in step 1) are chosen here.

The test window of an offline evaluation is never seen: the engine is fitted
on the training log only and tunes inside it.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from .data import PURCHASE, InteractionLog, ItemTable
from .models import DAY, decay, kind_weights, popularity, user_item_matrix

MIN_USERS = 30
MAX_USERS = 1200

CONTEXT_HALF_LIVES = (30.0, 0.0)
POPULAR_HALF_LIVES = (14.0, 60.0)
POPULAR_RATIOS = (0.0, 0.05, 0.2)
CONTENT_RATIOS = (0.0, 0.2)
PERSONAL_HALF_LIVES = (180.0, 365.0, 0.0)
REPEAT_EXPONENTS = (0.0, 0.5)
TREND_EXPONENTS = (0.0, 0.5, 1.0)
ITEM_WEIGHTS = (0.1, 0.2, 0.4, 0.8)


def _row_max_normalize(m: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each row so its largest entry is 1 (empty rows stay empty), as the engine does."""
    m = sp.csr_matrix(m, dtype=np.float64)
    tops = m.max(axis=1).toarray().ravel()
    scale = np.zeros(m.shape[0])
    scale[tops > 0] = 1.0 / tops[tops > 0]
    return sp.csr_matrix(sp.diags(scale) @ m)


def _recall(scores: np.ndarray, truth: sp.csr_matrix, k: int = 20) -> float:
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    hits = np.asarray(truth[np.arange(scores.shape[0])[:, None], top].sum(axis=1)).ravel()
    sizes = np.diff(truth.indptr)
    ok = sizes > 0
    return float(np.mean(hits[ok] / np.minimum(k, sizes[ok]))) if ok.any() else 0.0


def tune_blend(log: InteractionLog, items: ItemTable, now: float, params: dict) -> dict:
    """Return a copy of ``params`` with the blend chosen on the window before ``now``.

    Leaves ``params`` as they are when the window holds fewer than 30 customers
    with earlier history (too little to choose from). Deterministic.
    """
    from .engine import Recommender

    p = dict(params)
    start = now - p["validation_days"] * DAY
    inner = log.select(log.ts < start)
    window = log.select((log.ts >= start) & (log.ts <= now) & (log.kind == PURCHASE))
    seen = np.zeros(log.n_users, dtype=bool)
    seen[inner.user] = True
    users = np.unique(window.user[seen[window.user]])
    if len(users) < MIN_USERS or len(items) < 25:
        return p
    if len(users) > MAX_USERS:
        users = users[np.linspace(0, len(users) - 1, MAX_USERS).astype(np.int64)]
    fit_p = {**p, "content_weight": max(p["content_weight"], 1e-3)}
    parts = Recommender._fit_parts(inner, items, start, fit_p, None)
    truth = user_item_matrix(window, np.ones(len(window)))[users]
    truth.data[:] = 1.0
    mine = inner.select(np.isin(inner.user, users))
    bought = user_item_matrix(mine.select(mine.kind == PURCHASE), np.ones(int((mine.kind == PURCHASE).sum())))[users]
    bought.data[:] = 1.0
    truth_new = truth - truth.multiply(bought)
    truth_new.eliminate_zeros()
    hide = bought.toarray() > 0
    kw = kind_weights(mine, {1: p["view_weight"], 2: p["cart_weight"], 3: p["purchase_weight"]})

    qty_w = np.maximum(mine.qty.astype(np.float64), 1.0) ** p["quantity_exponent"]

    def history_matrix(half_life: float, personal: bool = False) -> sp.csr_matrix:
        w = kw * decay(start - mine.ts, half_life)
        return user_item_matrix(mine, w * qty_w if personal else w)[users]

    # step 1: the "new" view
    best_new = (-1.0, None)
    pops = {hl: popularity(inner, start, hl).astype(np.float64) for hl in POPULAR_HALF_LIVES}
    for chl in CONTEXT_HALF_LIVES:
        ctx = _row_max_normalize(history_matrix(chl))
        group = _row_max_normalize(ctx @ parts.neighbours).toarray()
        content = _row_max_normalize(ctx @ parts.content).toarray()
        for phl, rho, delta in itertools.product(POPULAR_HALF_LIVES, POPULAR_RATIOS, CONTENT_RATIOS):
            scores = (group + delta * content + rho * pops[phl][None, :]).astype(np.float32)
            scores[hide] = -np.inf
            r = _recall(scores, truth_new)
            if r > best_new[0] + 1e-9:
                best_new = (r, (chl, phl, rho, delta))
    chl, phl, rho, delta = best_new[1]
    ctx = _row_max_normalize(history_matrix(chl))
    group = (_row_max_normalize(ctx @ parts.neighbours) + delta * _row_max_normalize(ctx @ parts.content)).toarray()
    group += rho * pops[phl][None, :]

    # step 2: the "all" view
    best_all = (-1.0, None)
    for hl, eta, tau in itertools.product(PERSONAL_HALF_LIVES, REPEAT_EXPONENTS, TREND_EXPONENTS):
        lift = parts.repeat_rate.astype(np.float64) ** eta * parts.trend.astype(np.float64) ** tau
        personal = sp.csr_matrix(history_matrix(hl, personal=True).multiply(lift[None, :]))
        personal = _row_max_normalize(personal).toarray()
        for beta in ITEM_WEIGHTS:
            r = _recall((personal + beta * group).astype(np.float32), truth)
            if r > best_all[0] + 1e-9:
                best_all = (r, (hl, eta, tau, beta))
    hl, eta, tau, beta = best_all[1]
    p.update(
        context_half_life_days=chl,
        popular_half_life_days=phl,
        personal_half_life_days=hl,
        repeat_exponent=eta,
        trend_exponent=tau,
        personal_weight=1.0,
        item_weight=beta,
        popular_weight=beta * rho,
        content_weight=beta * delta,
        tuned_recall_all=round(best_all[0], 4),
        tuned_recall_new=round(best_new[0], 4),
    )
    return p
