"""Choosing the engine's blend on a validation window just before ``now``.

The window is the ``validation_days`` before ``now``; the parts are fitted on
what came before it, and the customers who bought something in the window are
ranked in both evaluation views (see :mod:`personalize.recommend.evaluate`):
"all" (repeat purchases count) and "new" (items the customer bought before are
hidden from the list and the truth).

The blend is the engine's own: ``personal + beta * (group + delta * content +
rho * popular)``, every part scaled to a maximum of 1 per customer. A
coordinate search moves one setting at a time through its grid and keeps a
move when it raises the objective, the sum of the two views' Recall@20 each
divided by its value at the starting point, so a gain in one view cannot
buy a larger loss in the other. A first pass visits every setting; a second
revisits the blend weights (beta, delta, rho).

The parts are scored once per setting that changes them (a personal matrix per
half life, lift and browse factor, a group matrix per history half life and
seasonal lift), so one trial is a weighted sum and two top-20 selections. When
the "new" view cannot change (every history item was bought: it is all
hidden), its result is reused instead of recomputed.

The test window of an offline evaluation is never seen: the engine is fitted
on the training log only and tunes inside it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .data import PURCHASE, InteractionLog, ItemTable
from .models import DAY, decay, kind_weights, popularity, user_item_matrix

MIN_USERS = 30
MAX_USERS = 1000
MAX_CELLS = 50_000_000  # validation customers x items held in one dense score matrix (200 MB in float32)
PASSES = 2

# each setting and the values the search may give it; the search starts from the first
GRID: dict[str, tuple[float, ...]] = {
    "context_half_life_days": (30.0, 0.0, 90.0),
    "group_trend_exponent": (0.0, 0.5, 1.0),
    "popular_half_life_days": (14.0, 60.0),
    "popular_ratio": (0.05, 0.0, 0.02, 0.2),
    "content_ratio": (0.1, 0.0, 0.3),
    "personal_half_life_days": (180.0, 90.0, 365.0, 0.0),
    "browse_factor": (1.0, 0.5, 0.25, 0.1),
    "repeat_exponent": (0.5, 0.0, 1.0),
    "trend_exponent": (0.5, 0.0, 1.0),
    "item_weight": (0.2, 0.05, 0.1, 0.4, 0.8),
}
ORDER = (
    "item_weight",
    "context_half_life_days",
    "group_trend_exponent",
    "popular_ratio",
    "popular_half_life_days",
    "content_ratio",
    "personal_half_life_days",
    "browse_factor",
    "repeat_exponent",
    "trend_exponent",
)


def _row_max_normalize(m: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Scale each row so its largest entry is 1 (rows without a positive entry stay as they are), as the engine does."""
    d = m.toarray() if sp.issparse(m) else np.asarray(m)
    d = d.astype(np.float32, copy=False)
    tops = d.max(axis=1)
    scale = np.ones(len(d), dtype=np.float32)
    scale[tops > 0] = 1.0 / tops[tops > 0]
    return d * scale[:, None]


def _hits(scores: np.ndarray, truth: sp.csr_matrix, k: int = 20) -> float:
    """Mean Recall@k: hits in each row's top ``k`` over min(k, |truth|), over rows with a truth."""
    n = scores.shape[1]
    top = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    hits = np.asarray(truth[np.arange(scores.shape[0])[:, None], top].sum(axis=1)).ravel()
    sizes = np.diff(truth.indptr)
    ok = sizes > 0
    return float(np.mean(hits[ok] / np.minimum(k, sizes[ok]))) if ok.any() else 0.0


def tune_blend(log: InteractionLog, items: ItemTable, now: float, params: dict, *, content: sp.csr_matrix | None = None) -> dict:
    """Return a copy of ``params`` with the blend chosen on the window before ``now``.

    Leaves ``params`` as they are when the window holds fewer than 30 customers
    with earlier history (too little to choose from). ``content`` is the
    content neighbour table when the caller already built it (it depends on the
    catalogue only). Deterministic.
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
    most = max(MIN_USERS, min(MAX_USERS, MAX_CELLS // max(len(items), 1)))
    if len(users) > most:
        users = users[np.linspace(0, len(users) - 1, most).astype(np.int64)]
    fit_p = {**p, "content_weight": max(p["content_weight"], 1e-3)}
    parts = Recommender._fit_parts(inner, items, start, fit_p, None, content=content)
    truth = user_item_matrix(window, np.ones(len(window)))[users]
    truth.data[:] = 1.0
    mine = inner.select(np.isin(inner.user, users))
    buys = mine.select(mine.kind == PURCHASE)
    bought = user_item_matrix(buys, np.ones(len(buys)))[users]
    bought.data[:] = 1.0
    truth_new = sp.csr_matrix(truth - truth.multiply(bought))
    truth_new.eliminate_zeros()
    hide = bought.toarray() > 0
    kw = kind_weights(mine, {1: p["view_weight"], 2: p["cart_weight"], 3: p["purchase_weight"]})
    qty_w = np.maximum(mine.qty.astype(np.float64), 1.0) ** p["quantity_exponent"]
    rate = parts.repeat_rate.astype(np.float64)
    rise = parts.trend.astype(np.float64)
    has_content = parts.content.nnz > 0

    cache: dict[tuple, np.ndarray] = {}

    def remember(key: tuple, value):
        # at most two dense matrices of a kind (the current setting's and a trial's), so a
        # large catalogue cannot fill the memory
        same = [k for k in cache if k[0] == key[0]]
        if len(same) >= 2:
            del cache[same[0]]
        cache[key] = value
        return value

    def personal(hl: float, eta: float, tau: float, f: float) -> np.ndarray:
        key = ("personal", hl, eta, tau, f)
        if key not in cache:
            w = kw * decay(start - mine.ts, hl) * qty_w
            m = user_item_matrix(mine, w)[users].multiply((rate ** eta * rise ** tau)[None, :]).toarray()
            if f != 1.0:
                m[~hide] *= f  # items never bought (only viewed or carted)
            return remember(key, _row_max_normalize(m))
        return cache[key]

    def context(chl: float) -> sp.csr_matrix:
        key = ("context", chl)
        if key not in cache:
            m = user_item_matrix(mine, kw * decay(start - mine.ts, chl))[users]
            tops = m.max(axis=1).toarray().ravel()
            scale = np.where(tops > 0, 1.0 / np.where(tops > 0, tops, 1.0), 1.0)
            return remember(key, sp.csr_matrix(sp.diags(scale) @ m))
        return cache[key]

    def lifted(m: sp.spmatrix, tg: float) -> np.ndarray:
        d = m.toarray()
        if tg:
            d *= (rise ** tg)[None, :]
        return _row_max_normalize(d)

    def group(chl: float, tg: float) -> np.ndarray:
        key = ("group", chl, tg)
        if key not in cache:
            return remember(key, lifted(context(chl) @ parts.neighbours, tg))
        return cache[key]

    def content_part(chl: float, tg: float) -> np.ndarray:
        key = ("content", chl, tg)
        if key not in cache:
            return remember(key, lifted(context(chl) @ parts.content, tg))
        return cache[key]

    pops = {hl: popularity(inner, start, hl).astype(np.float32) for hl in GRID["popular_half_life_days"]}

    # When every item of the customers' own histories was bought (an orders-only shop),
    # the "new" view hides the whole personal part, and the group weight only scales
    # what is left: that view's ranking then depends on the group settings alone.
    touched = user_item_matrix(mine, np.ones(len(mine)))[users]
    personal_hidden = (touched - touched.multiply(bought)).count_nonzero() == 0
    grid_used = {**GRID, "browse_factor": (1.0,)} if personal_hidden else GRID
    group_keys = ("context_half_life_days", "group_trend_exponent", "popular_ratio", "popular_half_life_days", "content_ratio")
    new_cache: dict[tuple, float] = {}

    def evaluate(s: dict) -> tuple[float, float]:
        chl, tg = s["context_half_life_days"], s["group_trend_exponent"]
        g = group(chl, tg)
        if has_content and s["content_ratio"] > 0:
            g = g + np.float32(s["content_ratio"]) * content_part(chl, tg)
        g = g + np.float32(s["popular_ratio"]) * pops[s["popular_half_life_days"]][None, :]
        mine_part = personal(s["personal_half_life_days"], s["repeat_exponent"], s["trend_exponent"], s["browse_factor"])
        score = mine_part + np.float32(s["item_weight"]) * g
        r_all = _hits(score, truth)
        key = tuple(s[name] for name in group_keys)
        if personal_hidden and key in new_cache:
            return r_all, new_cache[key]
        score[hide] = -np.inf
        new_cache[key] = r_new = _hits(score, truth_new)
        return r_all, r_new

    setting = {name: grid[0] for name, grid in GRID.items()}
    if not has_content:
        setting["content_ratio"] = 0.0
    base_all, base_new = evaluate(setting)
    scale_all, scale_new = 1.0 / max(base_all, 1e-6), 1.0 / max(base_new, 1e-6)
    best = (base_all * scale_all + base_new * scale_new, base_all, base_new)
    names = ORDER
    for _ in range(PASSES):
        moved = False
        for name in names:
            if name == "content_ratio" and not has_content:
                continue
            for value in grid_used[name]:
                if value == setting[name]:
                    continue
                trial = {**setting, name: value}
                r_all, r_new = evaluate(trial)
                objective = r_all * scale_all + r_new * scale_new
                if objective > best[0] + 1e-9:
                    best = (objective, r_all, r_new)
                    setting = trial
                    moved = True
        if not moved:
            break
        # later passes revisit the blend weights only: the half lives and lifts settle in one
        names = ("item_weight", "popular_ratio", "content_ratio")
    beta = setting["item_weight"]
    p.update(
        context_half_life_days=setting["context_half_life_days"],
        group_trend_exponent=setting["group_trend_exponent"],
        popular_half_life_days=setting["popular_half_life_days"],
        personal_half_life_days=setting["personal_half_life_days"],
        browse_factor=setting["browse_factor"],
        repeat_exponent=setting["repeat_exponent"],
        trend_exponent=setting["trend_exponent"],
        personal_weight=1.0,
        item_weight=beta,
        popular_weight=beta * setting["popular_ratio"],
        content_weight=beta * setting["content_ratio"],
        tuned_recall_all=round(best[1], 4),
        tuned_recall_new=round(best[2], 4),
    )
    return p
