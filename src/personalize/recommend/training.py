"""Learning a shop: the ranker on time-ordered windows, and the self-check that decides what is served.

With ``W`` the validation window (the test window of an offline evaluation, or the
shop's natural cadence) and ``now`` the moment of the fit:

* ``V = [now - W, now)`` is the shop's own most recent window, inside the training data;
* ``T1 = [now - 2W, now - W)``, ``T2``, ... are the windows before it.

For each window the parts (neighbours, popularity, ...) are fitted on what came
before it, the customers with a history who bought in it get candidates and
features, and the label is "bought this candidate in the window". A ranker
trained on ``T1, T2, ...`` only is scored on ``V`` against each simple baseline
(popularity, buy-again, item-kNN, EASE where it fits), exactly as they would be
served, in both views of the offline evaluation: "all" (repeat purchases count)
and "new" (what the customer bought before is hidden from the list and the
truth). In each view the winner is what will be served: the ranker only where it
beat every baseline, otherwise the best baseline. The ranker that is then served
is trained again on ``V, T1, ...`` with the parts refitted on the whole log.

Nothing here looks at anything after ``now``: an offline evaluation's test
window is never seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .data import PURCHASE, InteractionLog, ItemTable
from .gbm import Forest
from .models import DAY, in_threads, thread_count, user_item_matrix
from .ranker import (
    FEATURE_NAMES,
    Parts,
    TrainingRows,
    batch_scores,
    candidates,
    features,
    fit_forest,
    fit_parts,
    log_batch,
    window_rows,
)

BASELINES = ("popularity", "buy-again", "item-knn", "ease")
RANKER = "ranker"
BLEND = "blend"
VIEWS = ("all", "new")
MIN_CUSTOMERS = 30  # validation customers needed to check anything
MIN_PRODUCTS = 25  # fewer products than this: a top 20 is nearly the whole catalogue, nothing to check
MIN_HISTORY_DAYS = 7.0  # a training window needs at least this much history before it


WIDE = "ranker-wide"  # the ranker with more popular candidates, in the self-check
WIDER_GAIN = 0.01  # what the wider candidates must find more of (relative) to be served


@dataclass
class Learned:
    """The outcome of :func:`learn`: the parts at ``now``, the ranker, and what each view serves."""

    parts: Parts
    ranker: Forest | None = None
    ranker_new: Forest | None = None  # the "new" view's own ranker (None: the "all" one serves it)
    activity: Forest | None = None
    serve: dict[str, str] = field(default_factory=lambda: {"all": BLEND, "new": BLEND})
    check: dict = field(default_factory=dict)


def natural_window(log: InteractionLog) -> float:
    """The shop's cadence in days: the median gap between two purchase days of the same
    customer, between 7 and 30 days (30 when too few customers came back)."""
    buys = log.select(log.kind == PURCHASE)
    if len(buys) == 0:
        return 30.0
    day = np.floor(buys.ts / DAY).astype(np.int64)
    pairs = np.unique(np.stack([buys.user.astype(np.int64), day]), axis=1)
    same = pairs[0, 1:] == pairs[0, :-1]
    gaps = (pairs[1, 1:] - pairs[1, :-1])[same]
    if len(gaps) < 50:
        return 30.0
    return float(np.clip(np.median(gaps), 7.0, 30.0))


def training_starts(oldest: float, start_v: float, window: float, wanted: int) -> list[float]:
    """The starts of the validation window and of the training windows before it.

    Training windows end where the next begins, one window length apart, as long as each
    has ``MIN_HISTORY_DAYS`` (at most half a window) of history before it. When fewer than
    ``wanted`` fit (a short log and a short cadence, as a fashion month with a 7-day
    window), they overlap: their starts are spread evenly over the time there is."""
    need = min(MIN_HISTORY_DAYS, window / 2) * DAY
    latest = start_v - window * DAY  # the last training window ends where V starts
    if latest - oldest < need:
        return [start_v]
    room = latest - (oldest + need)
    fit = int(room // (window * DAY)) + 1
    if fit >= wanted:
        return [start_v] + [latest - k * window * DAY for k in range(wanted)]
    count = min(wanted, max(fit, int(room // DAY) + 1))
    step = room / (count - 1) if count > 1 else 0.0
    return [start_v] + [latest - k * step for k in range(count)]


def segment_codes(parts: Parts, user_segments, n_users: int) -> np.ndarray | None:
    """Each user's segment as an index into ``parts.segment_names`` (-1: none or too small)."""
    if user_segments is None or not parts.segment_names:
        return None
    index = {name: i for i, name in enumerate(parts.segment_names)}
    return np.fromiter((index.get(s, -1) if s else -1 for s in user_segments), dtype=np.int64, count=n_users)


def strategy_scores(name: str, parts: Parts, batch, scores) -> np.ndarray:
    """Dense scores (batch x items) of a simple strategy as it is served; ties go to popularity."""
    n = parts.n_items
    pop = parts.buyers
    small = pop / (pop.max() + 1.0) * 1e-3 if n else pop
    if name == "popularity":
        return np.tile(pop, (batch.size, 1))
    if name == "buy-again":
        m = sp.csr_matrix((batch.occasions, (batch.rows, batch.items)), shape=(batch.size, n)).toarray()
        return m + small
    if name == "item-knn":
        return scores.knn.dense() + small
    if name == "ease":
        return scores.ease.dense() + small
    raise ValueError(f"unknown strategy {name!r}")


def _recall(top: np.ndarray, truth: list[set[int]]) -> float:
    vals = [len(set(t.tolist()) & s) / min(20, len(s)) for t, s in zip(top, truth, strict=True) if s]
    return float(np.mean(vals)) if vals else 0.0


def _top20(score: np.ndarray) -> np.ndarray:
    k = min(20, score.shape[1])
    part = np.argpartition(-score, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(score, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def learn(log: InteractionLog, items: ItemTable, now: float, p: dict, user_segments=None, *,
          content: sp.csr_matrix | None = None, progress=None) -> Learned:
    """Fit the parts at ``now``; when the shop has enough history, train the ranker, run the
    self-check on its most recent window and choose what each view serves."""
    say = progress or (lambda message: None)
    if len(log) and log.ts.max() >= now:
        log = log.select(log.ts < now)
    rng = np.random.default_rng(0)
    window = float(p["validation_days"]) if p.get("validation_days") else natural_window(log)
    start_v = now - window * DAY
    first_seen = np.full(len(items), np.inf)
    if len(log):
        np.minimum.at(first_seen, log.item, log.ts)
    say(f"fitting the parts on {len(log):,} interactions")
    parts_now = fit_parts(log, items, now, p, user_segments, content=content)
    content = parts_now.content
    learned = Learned(parts_now)
    in_v = (log.ts >= start_v) & (log.kind == PURCHASE)
    had = np.zeros(log.n_users, dtype=bool)
    had[log.user[log.ts < start_v]] = True
    v_buyers = np.unique(log.user[in_v])
    v_buyers = v_buyers[had[v_buyers]]
    learned.check = {"window_days": round(window, 1), "customers": int(len(v_buyers))}
    if not p["tune"] or len(v_buyers) < MIN_CUSTOMERS or len(items) < MIN_PRODUCTS:
        learned.check["note"] = (
            "not checked: ranking settings fixed" if not p["tune"]
            else f"not checked: {len(items)} products (at least {MIN_PRODUCTS} needed)" if len(items) < MIN_PRODUCTS
            else f"not checked: {len(v_buyers)} customers bought in the last {window:g} days after an earlier visit (at least {MIN_CUSTOMERS} needed)"
        )
        return learned

    # the parts before each window, and each window's training rows
    oldest = float(log.ts.min())
    starts = training_starts(oldest, start_v, window, int(p["ranker_windows"]))

    # windows at once hold their parts at once: about 1 GiB more at 10 M interactions (docs/evaluation.md, Fit time)
    threads = thread_count(int(p["fit_threads"]), len(starts)) if len(log) <= int(p["fit_threads_max_interactions"]) else 1
    # the windows at once share what one window's scoring may hold: fewer customers scored at a time each
    step = max(16, min(512, 20_000_000 // max(len(items) * threads, 1)))

    def one_window(i: int, s: float):
        # each window draws from its own random stream, so the rows do not depend on how many run at once
        say(f"window {i}: fitting the parts before day {(s - oldest) / DAY:.0f}")
        past = log.select(log.ts < s)  # one copy of the rows before the window, for its parts and its rows
        parts = fit_parts(past, items, s, p, user_segments, content=content)
        seg = segment_codes(parts, user_segments, log.n_users)
        r = window_rows(log, parts, s, s + window * DAY, p, seg, first_seen, np.random.default_rng((0, i + 1)), i, step, past=past)
        return r, ((parts, seg) if i == 0 else None)  # the other windows' parts are let go at once

    done = in_threads(one_window, list(enumerate(starts)), threads)
    rows: list[TrainingRows] = [r for r, _ in done]
    parts_v, v_seg = done[0][1]
    del done
    v_rows = rows[0]
    earlier = [r for r in rows[1:] if r is not None]
    say(f"training the ranker on {sum(len(r.y) for r in earlier):,} candidates of {len(earlier)} earlier window(s)")
    (check_forest, check_model), (_, check_model_new) = _fit_rankers(earlier, p)

    # the self-check on V: the customers of V's rows, their full purchase history for "new"
    n = len(items)
    v_users = _v_users(log, start_v, now, p, rng)
    say(f"checking the ranker and the baselines on the last {window:g} days ({len(v_users):,} customers)")
    before = log.select(log.ts < start_v)
    buys = before.select(before.kind == PURCHASE)
    bought_m = user_item_matrix(buys, np.ones(len(buys))).tocsr()
    win = log.select(in_v)
    truth_m = user_item_matrix(win, np.ones(len(win))).tocsr()
    truth_all = [set(truth_m.indices[truth_m.indptr[u]:truth_m.indptr[u + 1]].tolist()) for u in v_users]
    bought = [set(bought_m.indices[bought_m.indptr[u]:bought_m.indptr[u + 1]].tolist()) if u < bought_m.shape[0] else set() for u in v_users]
    truth_new = [t - b for t, b in zip(truth_all, bought, strict=True)]
    results: dict[str, dict[str, float]] = {v: {} for v in VIEWS}
    names = [b for b in BASELINES if b != "ease" or parts_v.item_model == "ease"]
    if check_forest is not None:
        names = [RANKER, *names]
    step = max(16, min(512, 20_000_000 // max(n, 1)))
    lists: dict[tuple[str, str], list[np.ndarray]] = {}
    # the ranker is checked with its candidates as trained, and with more best sellers, risers and
    # segment best sellers among them (``popular_candidates_wide``): each view serves the wider set
    # only where it finds more of the window's purchases (a shop of strong best sellers and a large
    # catalogue gains; a sparse long tail does not, docs/evaluation.md)
    wide = int(p.get("popular_candidates_wide") or 0)
    variants = [(RANKER, p)] + ([(WIDE, {**p, "popular_candidates": wide})] if wide > int(p["popular_candidates"]) else [])
    for lo in range(0, len(v_users), step):
        chunk = v_users[lo:lo + step]
        seg = v_seg[chunk] if v_seg is not None else None
        batch = log_batch(before, chunk, start_v, int(p["max_history"]), parts_v.price, seg)
        scores = batch_scores(parts_v, batch)
        hide = np.zeros((len(chunk), n), dtype=bool)
        for r, c in enumerate(range(lo, lo + len(chunk))):
            hide[r, list(bought[c])] = True
        for name in names:
            if name == RANKER:
                fill = np.tile(parts_v.buyers / (parts_v.buyers.max() + 1.0) * 1e-9, (len(chunk), 1))
                for label, pv in variants:
                    keys = candidates(parts_v, batch, scores, pv)
                    x = features(parts_v, batch, scores, keys)
                    shared = check_model(x)
                    for view, prob in (("all", shared), ("new", shared), ("new-own", check_model_new(x) if check_model_new else None)):
                        if prob is None:
                            continue
                        dense = fill.copy()
                        dense[keys // n, keys % n] = prob + 1e-6
                        if view != "all":
                            dense[hide] = -np.inf
                        lists.setdefault((label, view), []).append(_top20(dense))
                continue
            dense = strategy_scores(name, parts_v, batch, scores)
            lists.setdefault((name, "all"), []).append(_top20(dense))
            dense[hide] = -np.inf
            lists.setdefault((name, "new"), []).append(_top20(dense))
    for name in names:
        results["all"][name] = round(_recall(np.vstack(lists[(name, "all")]), truth_all), 4)
        results["new"][name] = round(_recall(np.vstack(lists[(name, "new")]), truth_new), 4)
    own_new = False
    if RANKER in names:
        # per view, the ranker's best way: the candidates as trained or the wider set, and for "new" the
        # shared ranker or its own; the first of equals (as trained, shared) wins a tie
        def recall_of(label: str, view: str) -> float | None:
            got = lists.get((label, view))
            return None if got is None else round(_recall(np.vstack(got), truth_all if view == "all" else truth_new), 4)

        ways = {"all": [((label, False), recall_of(label, "all")) for label, _pv in variants],
                "new": [((label, own), recall_of(label, "new-own" if own else "new")) for label, _pv in variants for own in (False, True)]}
        every = {view: dict(tried) for view, tried in ways.items()}
        popular = {}
        for view, tried in ways.items():
            tried = [(way, r) for way, r in tried if r is not None]
            # the wider set costs more to serve: it is chosen only where it finds WIDER_GAIN more, not on noise
            as_trained = max(r for (label, _own), r in tried if label == RANKER)
            tried = [(way, r) for way, r in tried if way[0] == RANKER or r >= as_trained * (1.0 + WIDER_GAIN)]
            (label, own), best = max(tried, key=lambda t: t[1])  # max keeps the first of equals
            results[view][RANKER] = best
            popular[view] = wide if label == WIDE else int(p["popular_candidates"])
            if view == "new":
                own_new = own
                if every[view].get((label, True)) is not None:
                    learned.check["new_view_ranker"] = {"own": every[view][(label, True)], "shared": every[view][(label, False)]}
        if len(variants) > 1:
            learned.check["candidates"] = {
                "trained": int(p["popular_candidates"]), "wider": wide, "popular": popular,
                "recall": {view: {"as trained": every[view][(RANKER, False)], "wider": every[view][(WIDE, False)]} for view in VIEWS},
            }
    serve = {}
    lead = {}
    for view in VIEWS:
        best_base = max((b for b in names if b != RANKER), key=lambda b: (results[view][b], -BASELINES.index(b)))
        winner = best_base
        if RANKER in results[view] and results[view][RANKER] > results[view][best_base]:
            winner = RANKER
        serve[view] = winner
        base = results[view][best_base]
        top = results[view][winner] if winner == RANKER else results[view].get(RANKER, 0.0)
        lead[view] = {"best_baseline": best_base, "ranker_vs_best": round((top / base - 1.0) * 100, 1) if base > 0 else None}
    learned.serve = serve
    learned.check.update({"customers": int(len(v_users)), "recall": results, "lead": lead, "served": serve})
    if check_forest is not None and v_rows is not None:
        prob = check_model(v_rows.x)
        learned.check["calibration"] = {
            "mean_predicted": round(float(prob.mean()), 5), "observed": round(float(v_rows.y.mean()), 5),
            "log_loss": round(float(-np.mean(np.where(v_rows.y, np.log(np.maximum(prob, 1e-12)), np.log(np.maximum(1 - prob, 1e-12))))), 5),
        }

    # the served ranker: every window up to now, with the parts refitted on the whole log
    if RANKER in serve.values() or p.get("serve") == RANKER:
        usable = [r for r in rows if r is not None]
        say(f"training the served ranker on {sum(len(r.y) for r in usable):,} candidates of {len(usable)} window(s)")
        (learned.ranker, _), (learned.ranker_new, _) = _fit_rankers(usable, p, new=serve["new"] == RANKER and own_new)
        learned.activity, _ = fit_forest(np.vstack([r.customer for r in usable]), np.concatenate([r.bought_any for r in usable]), p, small=True)
        if learned.ranker is None:
            learned.serve = {v: (s if s != RANKER else lead[v]["best_baseline"]) for v, s in serve.items()}
    return learned


def _fit_rankers(rows: list[TrainingRows], p: dict, new: bool = True):
    """``((forest, predict), (forest_new, predict_new))``: the ranker for the "all" view, on every
    candidate, and the one for the "new" view, on the candidates the customer never bought (the
    "new" list never shows the others, and what decides among new items differs from what
    decides between a staple and a new item)."""
    if not rows:
        return (None, None), (None, None)
    pieces = [r.x for r in rows]  # not stacked: each fit copies only the rows it keeps
    y = np.concatenate([r.y for r in rows])
    group = np.concatenate([r.group for r in rows])
    if not new or not p["ranker_new_view"]:
        return fit_forest(pieces, y, p, group=group), (None, None)
    fresh = np.concatenate([r.x[:, FEATURE_NAMES.index("occasions")] == 0 for r in rows])
    # the two are fitted at once (each on its own random stream: the same forests either way)
    both, only_new = in_threads(lambda keep: fit_forest(pieces, y, p, group=group, rows=keep), [(None,), (np.flatnonzero(fresh),)],
                                int(p["fit_threads"]))
    return both, only_new


def _v_users(log: InteractionLog, start: float, now: float, p: dict, rng: np.random.Generator) -> np.ndarray:
    """The validation customers: a history before ``start`` and a purchase in [start, now)."""
    had = np.zeros(log.n_users, dtype=bool)
    had[log.user[log.ts < start]] = True
    inside = (log.ts >= start) & (log.ts < now) & (log.kind == PURCHASE)
    users = np.unique(log.user[inside])
    users = users[had[users]]
    most = int(p["check_customers"])
    if len(users) > most:
        users = np.sort(np.random.default_rng(1).choice(users, most, replace=False))
    return users.astype(np.int64)
