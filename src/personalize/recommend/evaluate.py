"""Offline evaluation with a global time split: our engine against strong simple baselines.

Train on everything before ``cutoff``; test on the purchases each customer makes
in the ``days`` after it, ranked against the whole catalogue (no sampled
negatives). Test customers are those with at least one interaction before the
cutoff and one purchase in the window (a guest basket never has both).

Two views:

* ``all``: every item bought in the window counts, repeats included;
* ``new``: items the customer bought before the cutoff are removed from both the
  ranked list and the truth (customers left with nothing to find are dropped).

Metrics (averaged over test customers; ``T`` = the customer's truth set):

* ``recall@20`` = hits in the top 20 / min(20, |T|)
* ``ndcg@10``   = DCG of the top 10 (binary gains, 1/log2(rank+1)) / the best DCG possible
* ``hr@10``     = 1 if any of the top 10 was bought
* ``coverage@20`` = distinct items in all top-20 lists / catalogue size

Every model learns from the known customers' rows only when guest baskets are
marked, as the reference protocol of the Online Retail table does. Baselines
(ties broken by popularity):

* ``popularity``: distinct buyers of the item;
* ``buy-again``: the customer's orders containing the item, then popularity;
* ``item-knn``: cosine over the binary customer x item matrix; an item ``j`` gets
  the similarities of the history items among ``j``'s 200 nearest (never itself);
* ``ease``: Steck's closed form, lambda 250, dense, float64.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from .data import PURCHASE, HistoryEntry, InteractionLog, ItemTable
from .engine import Recommender
from .models import DAY, cosine_neighbours, spd_inverse, user_item_matrix

ENGINE = "personalize"
BASELINES = ("popularity", "buy-again", "item-knn", "ease")
MODELS = (ENGINE, *BASELINES)
EASE_MAX_ITEMS = 20_000
EASE_LAMBDA = 250.0
KNN_NEIGHBOURS = 200
K_LIST = 20

Progress = Callable[[str], None]


# ----------------------------------------------------------------- metrics
def recall_at(ranked: list[int] | np.ndarray, truth: set[int], k: int) -> float:
    """Hits among the first ``k`` ranked items divided by min(k, |truth|); 0 for an empty truth."""
    if not truth:
        return 0.0
    hits = sum(1 for i in list(ranked)[:k] if int(i) in truth)
    return hits / min(k, len(truth))


def ndcg_at(ranked: list[int] | np.ndarray, truth: set[int], k: int) -> float:
    """Normalized discounted cumulative gain of the first ``k`` items with binary relevance."""
    if not truth:
        return 0.0
    dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(list(ranked)[:k]) if int(i) in truth)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(truth))))
    return float(dcg / ideal)


def hit_at(ranked: list[int] | np.ndarray, truth: set[int], k: int) -> float:
    """1.0 when any of the first ``k`` items is in ``truth``, else 0.0."""
    return 1.0 if any(int(i) in truth for i in list(ranked)[:k]) else 0.0


def summarize(lists: list[np.ndarray], truths: list[set[int]], n_items: int) -> dict[str, float]:
    """Average the metrics over customers; ``lists[c]`` is customer c's ranking (best first)."""
    if not lists:
        return {"recall@20": 0.0, "ndcg@10": 0.0, "hr@10": 0.0, "coverage@20": 0.0}
    shown: set[int] = set()
    for ranked in lists:
        shown.update(int(i) for i in list(ranked)[:20])
    return {
        "recall@20": float(np.mean([recall_at(r, t, 20) for r, t in zip(lists, truths, strict=True)])),
        "ndcg@10": float(np.mean([ndcg_at(r, t, 10) for r, t in zip(lists, truths, strict=True)])),
        "hr@10": float(np.mean([hit_at(r, t, 10) for r, t in zip(lists, truths, strict=True)])),
        "coverage@20": len(shown) / n_items if n_items else 0.0,
    }


# ----------------------------------------------------------------- the split
class Split:
    """A global time split: the training log, the test customers and their truth sets."""

    def __init__(self, log: InteractionLog, cutoff: float, days: float):
        self.cutoff = cutoff
        self.train = log.select(log.ts < cutoff)
        window = (log.ts >= cutoff) & (log.ts < cutoff + days * DAY) & (log.kind == PURCHASE)
        test = log.select(window)
        has_history = np.zeros(log.n_users, dtype=bool)
        has_history[self.train.user] = True
        self.users = np.unique(test.user[has_history[test.user]]).astype(np.int64)
        truth: dict[int, set[int]] = {int(u): set() for u in self.users}
        for u, i in zip(test.user.tolist(), test.item.tolist(), strict=True):
            if u in truth:
                truth[u].add(i)
        self.truth = [truth[int(u)] for u in self.users]
        bought = self.train.select(self.train.kind == PURCHASE)
        rows = user_item_matrix(bought, np.ones(len(bought)))
        self.bought = [set(rows.indices[rows.indptr[u]:rows.indptr[u + 1]].tolist()) for u in self.users]


# ----------------------------------------------------------------- baselines
def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise indexes of the ``k`` highest scores, best first (ties: lower index first)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _rank_batches(score_rows: Callable[[np.ndarray], np.ndarray], split: Split, k: int, batch: int = 512) -> tuple[list, list]:
    """Rank for every test customer in both views; ``score_rows(users)`` returns dense scores."""
    lists_all, lists_new = [], []
    for lo in range(0, len(split.users), batch):
        users = split.users[lo:lo + batch]
        scores = np.asarray(score_rows(users), dtype=np.float64)
        lists_all.extend(_top_k(scores, k))
        for r, u in enumerate(range(lo, lo + len(users))):
            bought = list(split.bought[u])
            scores[r, bought] = -np.inf
        lists_new.extend(_top_k(scores, k))
    return lists_all, lists_new


def _baseline_scores(name: str, split: Split, n_items: int, known: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Fit a baseline on the training log and return its batch scoring function.

    Baselines learn from known customers only (``known[u]`` is False for a guest
    basket), as the dataset's reference protocol does; see docs/evaluation.md for
    the exact definitions.
    """
    train = split.train
    if known is not None:
        train = train.select(known[train.user])
    buys = train.select(train.kind == PURCHASE)
    binary = user_item_matrix(train, np.ones(len(train)))
    binary.data[:] = 1.0
    # popularity: number of distinct customers who bought the item
    pop = np.asarray(user_item_matrix(buys, np.ones(len(buys))).astype(bool).sum(axis=0), dtype=np.float64).ravel()
    pop_small = pop / (pop.max() + 1.0) * 1e-3  # breaks ties, never outranks a real signal
    if name == "popularity":
        return lambda users: np.tile(pop, (len(users), 1))
    if name == "buy-again":
        # how many distinct orders (moments) of the customer contained the item
        key = np.unique(np.stack([buys.user.astype(np.int64), buys.item, buys.ts]), axis=1)
        freq = sp.csr_matrix((np.ones(key.shape[1]), (key[0], key[1].astype(np.int64))), shape=(train.n_users, n_items))
        return lambda users: freq[users].toarray() + pop_small
    if name == "item-knn":
        # cosine is symmetric, so the transpose of "each item's 200 nearest" is "the 200
        # nearest of each target item": score(u, j) = sum of cos(i, j) over the items i of
        # u's history that are among j's 200 nearest (i != j)
        table = sp.csr_matrix(cosine_neighbours(binary, KNN_NEIGHBOURS).T)
        return lambda users: (binary[users] @ table).toarray() + pop_small
    if name == "ease":
        if n_items > EASE_MAX_ITEMS:
            raise ValueError(f"EASE is dense in items squared; skipped above {EASE_MAX_ITEMS} items")
        gram = np.asfortranarray((binary.T @ binary).toarray())
        gram[np.diag_indices(n_items)] += EASE_LAMBDA
        p = spd_inverse(gram)  # float64, as the textbook closed form
        b = p / (-np.diag(p))[None, :]
        b[np.diag_indices(n_items)] = 0.0
        return lambda users: binary[users] @ b + pop_small
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def _engine_lists(model: Recommender, split: Split, k: int) -> tuple[list, list]:
    """Rank with the serving path itself: one ``recommend`` call per customer and view."""
    train = split.train
    order = np.argsort(train.user, kind="stable")
    starts = np.searchsorted(train.user[order], split.users)
    ends = np.searchsorted(train.user[order], split.users, side="right")
    lists_all, lists_new = [], []
    for c, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        rows = order[lo:hi]
        hist = [
            HistoryEntry(i, kd, t, q)
            for i, kd, t, q in zip(train.item[rows].tolist(), train.kind[rows].tolist(), train.ts[rows].tolist(), train.qty[rows].tolist(), strict=True)
        ]
        lists_all.append([s.item for s in model.recommend(hist, k, now=split.cutoff)])
        lists_new.append([s.item for s in model.recommend(hist, k, now=split.cutoff, exclude=split.bought[c], view="new")])
    return lists_all, lists_new


def run_evaluation(
    log: InteractionLog,
    items: ItemTable,
    cutoff: datetime,
    days: int = 30,
    models: list[str] | None = None,
    *,
    params: dict | None = None,
    guests: np.ndarray | None = None,
    progress: Progress | None = None,
) -> dict:
    """Evaluate ``models`` (default: ours and every baseline) on a global time split at ``cutoff``.

    Returns ``{"models": {name: {"all": metrics, "new": metrics, "fit_seconds": s}}, "engine": name}``
    with the metrics described in this module's docstring. ``params`` go to our
    engine's fit. ``guests[u]`` is True when user ``u`` is a guest basket (no
    customer id): every model then learns from the known customers' rows only,
    as the reference protocol of the Online Retail table does. A model that
    cannot run on this data (EASE on a huge catalogue) is left out of
    ``models`` and its reason is under ``"skipped"``.
    """
    say = progress or (lambda message: None)
    names = list(models) if models else list(MODELS)
    for name in names:
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    split = Split(log, cutoff.timestamp(), days)
    say(f"split at {cutoff:%Y-%m-%d}: {len(split.train)} training rows, {len(split.users)} test customers")
    n = len(items)
    known = None if guests is None else ~np.asarray(guests, dtype=bool)
    result: dict = {"models": {}, "engine": ENGINE}
    skipped: dict[str, str] = {}
    for name in names:
        say(f"fitting {name}")
        started = time.perf_counter()
        if name == ENGINE:
            train = split.train if known is None else split.train.select(known[split.train.user])
            # the self-check's window mirrors the test window
            model = Recommender.fit(train, items, now=split.cutoff, params={"validation_days": float(days), **(params or {})})
            result["served"] = {"serve": model.serve, "check": model.check, "summary": model.describe()}
            say(model.describe())
            fit_seconds = time.perf_counter() - started
            say(f"ranking with {name}")
            lists_all, lists_new = _engine_lists(model, split, K_LIST)
        else:
            try:
                score_rows = _baseline_scores(name, split, n, known)
            except ValueError as exc:
                skipped[name] = str(exc)
                say(f"skipped {name}: {exc}")
                continue
            fit_seconds = time.perf_counter() - started
            say(f"ranking with {name}")
            lists_all, lists_new = _rank_batches(score_rows, split, K_LIST)
        new_pairs = [(r, t - b) for r, t, b in zip(lists_new, split.truth, split.bought, strict=True) if t - b]
        result["models"][name] = {
            "all": summarize(lists_all, split.truth, n),
            "new": summarize([r for r, _ in new_pairs], [t for _, t in new_pairs], n),
            "fit_seconds": round(fit_seconds, 3),
        }
    if skipped:
        result["skipped"] = skipped
    return result


def format_table(result: dict) -> str:
    """Render an evaluation result as a plain-text table, one model per line."""
    cols = ("recall@20", "ndcg@10", "hr@10", "coverage@20")
    head = ["model"] + [f"{c} {v}" for v in ("all", "new") for c in cols] + ["fit s"]
    rows = []
    for name, m in result["models"].items():
        label = f"{name} (ours)" if name == result.get("engine") else name
        rows.append([label] + [f"{m[v][c]:.3f}" for v in ("all", "new") for c in cols] + [f"{m['fit_seconds']:.1f}"])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    for name, why in result.get("skipped", {}).items():
        lines.append(f"({name} skipped: {why})")
    return "\n".join(lines)
