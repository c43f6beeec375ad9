"""The serving engine: one visitor's live history in, a ranked and explained list out.

A fitted :class:`Recommender` holds only arrays: bounded neighbour tables per item
(EASE or cosine, item-kNN, content), popularity vectors, per-item statistics, the
catalogue, the learned ranker's trees, and which strategy each view serves.
``recommend`` never retrains: the visitor's history is passed in on every call, so
their newest click counts at once.

What a visitor gets is decided at fit time by the self-check of
:mod:`personalize.recommend.training`, per view ("all": the home list, repeat
purchases welcome; "new": only things the visitor has not bought):

* ``ranker``: candidates from every generator, ranked by the gradient-boosted
  propensity model of :mod:`personalize.recommend.ranker`;
* a simple baseline (``popularity``, ``buy-again``, ``item-knn``, ``ease``) when it
  beat the ranker on the shop's own most recent window;
* ``blend``: when the shop has too little history to check anything, a fixed blend.

The blend's score of item ``j`` for a visitor is

* ``personal``: the visitor's own recency- and kind-weighted interactions with ``j``
  (view < cart < purchase; repeat buyers see their staples again; items only looked at
  can be weighed down further by ``browse_factor``),
* ``item-item``: votes for ``j`` from the neighbours of the items in the history
  (optionally lifted by ``j``'s recent rise in buyers),
* ``content``: the same with TF-IDF title/description neighbours (new items, thin histories),
* ``popular``: recency-decayed best sellers, per segment when one is given.

Each part is scaled to a maximum of 1 before blending, so the weights are
comparable across shops and the absolute clock cancels out.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .data import CART, PURCHASE, VIEW, HistoryArrays, HistoryEntry, InteractionLog, ItemTable
from .gbm import Forest
from .models import DAY, content_neighbours, decay
from .ranker import (
    FEATURES,
    NONE,
    Parts,
    batch_scores,
    candidates,
    features,
    fit_parts,
    history_batch,
)
from .strategies import Pages, PageTables, describe_pages, fit_page_tables
from .training import BLEND, RANKER, VIEWS, Learned, learn, strategy_scores

FORMAT_VERSION = 2

DEFAULT_PARAMS: dict = {
    # how much one interaction of each kind says about a visitor's taste
    "view_weight": 0.3,
    "cart_weight": 0.6,
    "purchase_weight": 1.0,
    # personal part: half life of the visitor's own interactions (0 = never fades)
    "personal_half_life_days": 60.0,
    # personal part: a line's weight grows as quantity ** this (0 = quantity ignored)
    "quantity_exponent": 0.0,
    # personal part: extra factor for items the visitor viewed or carted but never bought
    # (1 = the kind weights alone; lower lets the group parts rank them)
    "browse_factor": 1.0,
    # how strongly an item's repeat-purchase rate lifts it in the personal part (0 = not at all)
    "repeat_exponent": 0.0,
    # how strongly an item's recent rise in buyers (season, trend) lifts it in the personal part
    "trend_exponent": 0.0,
    # how strongly an item's recent rise lifts the votes it gets from neighbours (item-item, content)
    "group_trend_exponent": 0.0,
    # half life of history entries when they vote for neighbours (item-item, content)
    "context_half_life_days": 60.0,
    # blend weights (the personal part weighs 1)
    "personal_weight": 1.0,
    "item_weight": 0.3,
    "content_weight": 0.05,
    "popular_weight": 0.05,
    # item-item model
    "ease_max_items": 8000,  # EASE (dense while fitting) up to this many items, sparse cosine above
    "ease_lambda": 250.0,
    "neighbours": 200,  # kept per item from EASE
    "cosine_neighbours": 100,  # kept per item from sparse cosine (large catalogues)
    "negative_neighbours": False,  # EASE: keep the strongest weights by magnitude, negative ones too
    "content_neighbours": 30,
    "cold_start_similarity": 0.6,  # a never-sold item borrows from a sold one at least this similar (TF-IDF cosine)
    "item_half_life_days": 60.0,  # fade old co-purchases when learning neighbours (0 = no fading)
    "popular_half_life_days": 30.0,
    "max_history": 500,  # newest entries of a history used when serving (and when training the ranker)
    "knn_neighbours": 200,  # item-kNN: each target item's nearest, as the baseline of the same name
    "max_segments": 50,
    "min_segment_users": 20,
    # the learned ranker and its self-check (see training.py)
    "tune": True,  # False: no ranker, no check; the fixed blend is served
    "pages": None,  # overrides of the page strategies' settings (strategies.PAGE_PARAMS), e.g. {"together_learned": False}
    "validation_days": None,  # the self-check's window; None: the shop's cadence (7 to 30 days)
    "ranker_windows": 4,  # training windows before the validation window
    "fit_threads": 2,  # training windows and the two rankers fitted at once (threads; never more than the machine's cores)
    "fit_threads_max_interactions": 5_000_000,  # above this, the windows and the page tables are fitted one at a time (memory)
    "train_customers": 3000,  # customers sampled per training window
    "check_customers": 2000,  # customers sampled for the self-check
    "activity_customers": 5000,  # customers sampled per window for the "buys anything" model
    "history_candidates": 100,  # candidates per visitor from each generator
    "item_candidates": 100,
    "knn_candidates": 50,
    "content_candidates": 30,
    "popular_candidates": 30,
    # the self-check also tries the ranker with this many (0: not tried) and each view serves that
    # where it found at least 1 % more of the validation window's purchases (docs/evaluation.md)
    "popular_candidates_wide": 100,
    "ranker_trees": 200,  # at most: held-out rows stop it earlier (ranker_early_stop_rows)
    "ranker_depth": 6,
    "ranker_learning_rate": 0.05,
    "ranker_min_leaf": 100,  # rows (weighted) a leaf needs at least: fewer leaves fitted to noise on small shops
    "ranker_threads": 1,  # one core: on a shared 2-core machine a second thread mostly waits
    "ranker_library": "lightgbm",  # or "sklearn" (used anyway when LightGBM is not installed)
    "ranker_new_view": True,  # a second ranker for the "new" view, trained on never-bought candidates
    "ranker_objective": "binary",  # or "lambdarank" (LightGBM only; its scores are not probabilities)
    "ranker_negatives": 5.0,  # negatives kept per positive when training (the rest are weighed in)
    "ranker_early_stop_rows": 1_000,  # more rows than this: 10 % of them decide when to stop adding trees (small shops too)
    "ranker_patience": 20,  # rounds without gain on the held-out rows before the trees stop (twice 10 at the old rate 0.1)
    "ranker_max_rows": 300_000,  # rows a ranker is fitted on, at most (sampled, weighted to stay calibrated)
    "serve": "auto",  # "auto": what the self-check chose; or force one strategy in both views (experiments)
}

REASON_PERSONAL = {PURCHASE: "You bought this before", CART: "You added this to your cart", VIEW: "You viewed this recently"}
REASON_BECAUSE = {PURCHASE: "Often bought with {}", CART: "Goes with {} in your cart", VIEW: "Because you viewed {}"}
STRATEGY_LABELS = {
    RANKER: "the learned ranker", BLEND: "the fixed blend", "popularity": "best sellers", "buy-again": "buy again",
    "item-knn": "item-kNN", "ease": "EASE",
}
_FAMILY_NAMES = sorted({family for _, family in FEATURES})
_FAMILY_MATRIX = np.array([[1.0 if fam == name else 0.0 for name in _FAMILY_NAMES] for _, fam in FEATURES])  # features x families


def every(days: float) -> str:
    """A re-purchase rhythm in the owner's words: "every day", "every 5 days", "every 2 weeks"."""
    if days < 1.5:
        return "every day"
    if days < 6.5:
        return f"every {round(days)} days"
    if days < 60:
        weeks = round(days / 7)
        return "every week" if weeks == 1 else f"every {weeks} weeks"
    months = round(days / 30)
    return "every month" if months == 1 else f"every {months} months"


@dataclass(frozen=True)
class Scored:
    """One recommended item: its index, blended score, a human reason and the strategy that chose it."""

    item: int
    score: float
    reason: str
    source: str


@dataclass(frozen=True)
class Rules:
    """A shop's business rules, applied after scoring.

    ``pin``: items shown first, in this order. ``boost``: item -> score multiplier
    (above 1 raises, below 1 lowers). ``bury``: items shown only when nothing else
    is left. ``bought_show``: "bought A -> show B", item A -> items B placed right
    after the pins whenever A is in the visitor's history. ``exclude``: never shown.
    Out-of-stock items and the call's ``exclude`` are never shown, rules or not.
    """

    pin: Sequence[int] = ()
    boost: Mapping[int, float] = field(default_factory=dict)
    bury: Collection[int] = frozenset()
    bought_show: Mapping[int, Sequence[int]] = field(default_factory=dict)
    exclude: Collection[int] = frozenset()


def _params(params: dict | None) -> dict:
    merged = dict(DEFAULT_PARAMS)
    if params:
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise ValueError(f"unknown recommender parameter(s): {', '.join(sorted(unknown))}")
        merged.update(params)
    return merged


def _kind_table(p: dict) -> dict[int, float]:
    return {VIEW: p["view_weight"], CART: p["cart_weight"], PURCHASE: p["purchase_weight"]}


def _gather_rows(table: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (source position, column, weighted value) for every entry of the given rows."""
    starts = table.indptr[rows]
    lens = table.indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    pos = np.repeat(np.arange(len(rows)), lens)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    idx = offsets + np.arange(total)
    return pos, table.indices[idx].astype(np.int64), table.data[idx] * weights[pos]


class Recommender:
    """A fitted, serializable recommendation model over one catalogue."""

    def __init__(self, items: ItemTable, params: dict, parts: Parts, learned: Learned | None = None,
                 page_tables: PageTables | None = None):
        self.items = items
        # the page strategies' tables (bought together, co-view): see personalize.recommend.strategies
        self.page_tables = page_tables if page_tables is not None else PageTables.empty(len(items))
        self._pages: Pages | None = None
        self.params = params
        self.parts = parts
        learned = learned or Learned(parts)
        self.ranker: Forest | None = learned.ranker
        self.activity: Forest | None = learned.activity
        self.ranker_new: Forest | None = learned.ranker_new
        self.serve = dict(learned.serve)
        self.check = dict(learned.check)
        forced = params.get("serve", "auto")
        if forced != "auto":
            self.serve = {view: forced for view in VIEWS}
        if any(v == RANKER for v in self.serve.values()) and self.ranker is None:
            raise ValueError("the ranker is served but was not trained")
        self.fitted_at = parts.now
        # how far the wall clock was past the data when this was trained (see clock())
        self.clock_offset = 0.0
        self.item_model = parts.item_model
        self.neighbours = parts.neighbours
        self.content = parts.content
        self.popular_scores = parts.popular
        self.segment_popular = dict(zip(parts.segment_names, parts.segment_popular, strict=True)) if parts.segment_popular is not None else {}
        self._segment_index = {name: i for i, name in enumerate(parts.segment_names)}
        self.repeat_rate = parts.repeat_rate
        self.trend = parts.trend
        # the personal part's per-item lift, combined once so serving stays cheap
        self._lift = self.repeat_rate.astype(np.float64) ** params["repeat_exponent"] * self.trend.astype(np.float64) ** params["trend_exponent"]
        self._group_lift = self.trend.astype(np.float64) ** params["group_trend_exponent"] if params["group_trend_exponent"] else None
        self._pop64: dict[str | None, np.ndarray] = {}
        self._kind_weight = np.zeros(4, dtype=np.float64)
        for kind, w in _kind_table(params).items():
            self._kind_weight[kind] = w

    # ----------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        log: InteractionLog,
        items: ItemTable,
        now: float | None = None,
        params: dict | None = None,
        *,
        user_segments: Sequence[str] | None = None,
        progress=None,
    ) -> Recommender:
        """Learn from ``log`` (everything before ``now``) for the catalogue ``items``.

        ``now`` defaults to just after the newest interaction. ``params`` overrides
        entries of :data:`DEFAULT_PARAMS`. With ``tune`` on (the default) and enough
        history, the ranker is trained on windows before ``now`` and the self-check
        chooses what each view serves (see :mod:`personalize.recommend.training`);
        the outcome is in :attr:`check`. ``user_segments[u]`` names user ``u``'s segment
        (e.g. a country) for "popular with customers like you". Deterministic.
        """
        if log.n_items != len(items):
            raise ValueError(f"log has {log.n_items} items but the catalogue has {len(items)}")
        p = _params(params)
        if now is None:
            now = float(log.ts.max()) + 1.0 if len(log) else time.time()
        log = log.select(log.ts < now) if len(log) and log.ts.max() >= now else log
        content = content_neighbours(items, int(p["content_neighbours"])) if len(items) else None
        learned = learn(log, items, now, p, user_segments, content=content, progress=progress)
        if progress:
            progress("learning what is bought together and viewed together")
        threads = int(p["fit_threads"]) if len(log) <= int(p["fit_threads_max_interactions"]) else 1  # as the windows (memory)
        return cls(items, p, learned.parts, learned, fit_page_tables(log, now, p.get("pages"), content=content, threads=threads))

    @classmethod
    def _fit_parts(cls, log: InteractionLog, items: ItemTable, now: float, p: dict, user_segments: Sequence[str] | None,
                   *, content: sp.csr_matrix | None = None) -> Recommender:
        """The parts alone, served as the fixed blend."""
        return cls(items, p, fit_parts(log, items, now, p, user_segments, content=content))

    @property
    def pages(self) -> Pages:
        """The page strategies (product page, cart, recently viewed, listing) over this model."""
        if self._pages is None:
            titles = [self._title(i) for i in range(len(self.items))]
            self._pages = Pages(self.page_tables, titles, self.items.in_stock, self.parts.knn, self.content, self.popular_scores)
        return self._pages

    def clock(self, wall: float | None = None) -> float:
        """The time to rank at, given the wall clock: the model's own time, which runs from where
        its data ended (``fitted_at``) as the wall clock runs from when it was trained.

        A live shop's data ends moments before training, so this is the wall clock to within
        seconds. A shop whose history was imported (or that went quiet) is ranked as of the
        end of its data, the time its windows, recencies and rhythms were learned at, instead
        of years after anything the ranker saw. Events newer than this time count as just now."""
        return (time.time() if wall is None else wall) - self.clock_offset

    def describe(self) -> str:
        """What this model serves and why, in one or two sentences for the owner."""
        return describe_check(self.check, self.serve)

    # ----------------------------------------------------------------- scoring
    def _history_arrays(self, history: HistoryArrays, now: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Aggregate a history into (unique items, personal weight, context weight, strongest kind) per item."""
        n = len(self.items)
        newest = int(self.params["max_history"])
        items, kinds, ts, qty = (np.asarray(a)[-newest:] for a in history)
        ok = (items >= 0) & (items < n) & (kinds >= VIEW) & (kinds <= PURCHASE)
        items, kinds, ts, qty = items[ok], kinds[ok], ts[ok], np.maximum(qty[ok], 1.0)
        if len(items) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, np.zeros(0), np.zeros(0), empty
        if now is None:
            now = float(ts.max())
        kw = self._kind_weight[kinds]
        uniq, inv = np.unique(items, return_inverse=True)
        w = kw * decay(now - ts, self.params["personal_half_life_days"]) * qty ** self.params["quantity_exponent"]
        weight = np.bincount(inv, weights=w, minlength=len(uniq))
        weight *= self._lift[uniq]
        c = kw * decay(now - ts, self.params["context_half_life_days"])
        context = np.bincount(inv, weights=c, minlength=len(uniq))
        strongest = np.zeros(len(uniq), dtype=np.int64)
        np.maximum.at(strongest, inv, kinds)
        if self.params["browse_factor"] != 1.0:
            weight[strongest < PURCHASE] *= self.params["browse_factor"]
        return uniq, weight, context, strongest

    def _blend(self, uniq: np.ndarray, weight: np.ndarray, context: np.ndarray, segment: str | None):
        """Return the blended score vector, its parts (each scaled to max 1, before weighting), the
        popularity's source, and the neighbour and content table rows read for the history."""
        n = len(self.items)
        p = self.params
        personal = np.zeros(n)
        top = weight.max() if len(weight) else 0.0
        if top > 0:
            personal[uniq] = weight / top
        top_c = context.max() if len(context) else 0.0
        norm_w = context / top_c if top_c > 0 else context
        parts: dict[str, np.ndarray | None] = {"personal": personal}
        score = p["personal_weight"] * personal
        gathered: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for name, table, w in (("item-item", self.neighbours, p["item_weight"]), ("content", self.content, p["content_weight"])):
            vec = None  # a part with no weight or no votes is left out (read as zeros)
            if w > 0 and len(uniq):
                # the table's rows of the history items, kept for _causes (which weighs them otherwise)
                pos, cols, raw = gathered[name] = _gather_rows(table, uniq, np.ones(len(uniq)))
                vals = raw * norm_w[pos]
                # (no votes at all: bincount gives integers, which the lift could not scale in place)
                vec = np.bincount(cols, weights=vals, minlength=n).astype(np.float64, copy=False)
                if self._group_lift is not None:
                    vec *= self._group_lift
                m = vec.max() if len(vec) else 0.0
                if m > 0:
                    vec /= m
                score += w * vec
            parts[name] = vec
        pop, pop_source = self._popularity(segment)
        parts[pop_source] = pop
        score += p["popular_weight"] * pop
        return score, parts, pop_source, gathered

    def _popularity(self, segment: str | None) -> tuple[np.ndarray, str]:
        """The popularity vector to blend (float64, read-only: shared between calls) and its source."""
        key = segment if segment is not None and segment in self.segment_popular else None
        cached = self._pop64.get(key)
        if cached is None:
            source = self.popular_scores if key is None else self.segment_popular[key]
            cached = source.astype(np.float64)
            cached.flags.writeable = False
            self._pop64[key] = cached
        return cached, ("popular" if key is None else "segment")

    def _allowed(self, exclude: Collection[int], rules: Rules | None) -> np.ndarray:
        allowed = np.asarray(self.items.in_stock, dtype=bool).copy()
        for group in (exclude, rules.exclude if rules else ()):
            idx = np.fromiter((int(i) for i in group), dtype=np.int64)
            idx = idx[(idx >= 0) & (idx < len(allowed))]
            allowed[idx] = False
        return allowed

    @staticmethod
    def _top(score: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
        """Indexes of the ``k`` best positive, allowed scores; ties go to the lower index."""
        s = np.where(allowed, score, -np.inf)
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        if k < len(s):
            thr = np.partition(s, len(s) - k)[len(s) - k]
            cand = np.flatnonzero((s >= thr) & (s > 0))
        else:
            cand = np.flatnonzero(s > 0)
        order = np.lexsort((cand, -s[cand]))
        return cand[order[:k]]

    def _title(self, item: int) -> str:
        return self.items.titles[item] or self.items.ids[item]

    # ----------------------------------------------------------------- public API
    def recommend(
        self,
        history: Sequence[HistoryEntry] | HistoryArrays,
        k: int,
        now: float | None = None,
        exclude: Collection[int] = frozenset(),
        segment: str | None = None,
        *,
        rules: Rules | None = None,
        view: str = "all",
    ) -> list[Scored]:
        """Return up to ``k`` items for a visitor with this ``history`` (item indexes, oldest first; as
        :class:`HistoryEntry` steps or, cheaper for a server, as :class:`HistoryArrays`), best first.

        ``view`` "all" may show things the visitor bought before (their staples);
        "new" never does, and ranks with whatever won that view in the self-check.
        Never returns out-of-stock items, items in ``exclude`` or in ``rules.exclude``.
        With no usable history this is :meth:`popular`. ``now`` (unix seconds) sets
        the age of history entries and defaults to the newest of them. The result
        depends only on the arguments and the fitted model.
        """
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; choose from {', '.join(VIEWS)}")
        if not isinstance(history, HistoryArrays):
            history = HistoryArrays.of(history)
        strategy = self.serve.get(view, BLEND)
        if strategy == BLEND:
            uniq, weight, context, strongest = self._history_arrays(history, now)
            if view == "new":
                exclude = set(exclude) | set(uniq[strongest == PURCHASE].tolist())
            allowed = self._allowed(exclude, rules)
            score, parts, pop_source, gathered = self._blend(uniq, weight, context, segment)
            if rules is not None:
                score = self._apply_rules(score, rules, uniq)
            chosen = self._top(score, allowed, k)
            out = self._explain(chosen, score, parts, pop_source, uniq, context, strongest, gathered)
        else:
            batch = self._batch(history, now, segment)
            if batch is None:
                return self.popular(k, exclude, segment)
            uniq = batch.items
            if view == "new":
                exclude = set(exclude) | set(uniq[batch.occasions > 0].tolist())
            allowed = self._allowed(exclude, rules)
            scores = batch_scores(self.parts, batch)
            if strategy == RANKER:
                keys = candidates(self.parts, batch, scores, self._candidate_params(view), allowed)
                x = features(self.parts, batch, scores, keys)
                forest = self._forest(view)
                prob = forest.predict(x)
                # best sellers fill the list when the candidates run out
                score = self.parts.buyers / (self.parts.buyers.max(initial=0.0) + 1.0) * 1e-9
                score[keys % len(self.items)] = prob + 1e-6
            else:
                x = keys = None
                score = strategy_scores(strategy, self.parts, batch, scores)[0]
            if rules is not None:
                score = self._apply_rules(score, rules, uniq)
            chosen = self._top(score, allowed, k)
            out = self._explain_learned(strategy, chosen, score, batch, keys, x, segment, self._forest(view), scores.read)
        if rules is not None:
            out = self._place_rules(out, rules, uniq, allowed, k)
        return out

    def _candidate_params(self, view: str) -> dict:
        """The settings the view's candidates are drawn with: as trained, or with the number of
        popular candidates the self-check chose for it."""
        chosen = ((self.check.get("candidates") or {}).get("popular") or {}).get(view)
        if not chosen or int(chosen) == int(self.params["popular_candidates"]):
            return self.params
        return {**self.params, "popular_candidates": int(chosen)}

    def purchase_probabilities(self, history: Sequence[HistoryEntry] | HistoryArrays, items: Sequence[int],
                               now: float | None = None, segment: str | None = None) -> np.ndarray:
        """The calibrated chance that this visitor buys each of ``items`` in the next validation window
        (``check["window_days"]`` days): P(buys anything) x P(buys the item | buys something).

        Items the ranker would not consider for the visitor (not a candidate of any generator)
        get 0. Raises ``ValueError`` when the model has no ranker (too little history to train one).
        """
        if self.ranker is None or self.activity is None:
            raise ValueError("this model has no ranker: the shop had too little history to train one")
        if not isinstance(history, HistoryArrays):
            history = HistoryArrays.of(history)
        wanted = np.asarray(list(items), dtype=np.int64)
        batch = self._batch(history, now, segment)
        if batch is None:
            return np.zeros(len(wanted))
        scores = batch_scores(self.parts, batch)
        keys = candidates(self.parts, batch, scores, self.params)
        prob = np.zeros(len(self.items))
        prob[keys % len(self.items)] = self.ranker.predict(features(self.parts, batch, scores, keys))
        any_ = float(self.activity.predict(batch.customer)[0])
        ok = (wanted >= 0) & (wanted < len(self.items))
        out = np.zeros(len(wanted))
        out[ok] = prob[wanted[ok]] * any_
        return out

    def _batch(self, history: HistoryArrays, now: float | None, segment: str | None):
        """The visitor's history as a batch of one for the ranker and the baselines (``None``: nothing usable)."""
        items_, kinds, ts, qty = (np.asarray(a) for a in history)
        n = len(self.items)
        ok = (items_ >= 0) & (items_ < n) & (kinds >= VIEW) & (kinds <= PURCHASE)
        if not ok.any():
            return None
        if now is None:
            now = float(ts[ok].max())
        ts = np.minimum(ts, now)  # an event after the model's clock (see clock()) happened just now
        seg = np.array([self._segment_index.get(segment, -1) if segment is not None else -1])
        batch = history_batch(np.zeros(len(items_), dtype=np.int64), items_.astype(np.int64), kinds.astype(np.int64),
                              ts.astype(np.float64), qty.astype(np.float64), 1, n, now, int(self.params["max_history"]),
                              self.parts.price, seg)
        return batch if len(batch.keys) else None

    def popular(self, k: int, exclude: Collection[int] = frozenset(), segment: str | None = None) -> list[Scored]:
        """Return the ``k`` best sellers in stock (of ``segment`` when it is known), best first."""
        pop, source = self._popularity(segment)
        chosen = self._top(pop, self._allowed(exclude, None), k)
        reason = "Popular with customers like you" if source == "segment" else "Popular right now"
        return [Scored(int(i), float(pop[i]), reason, source) for i in chosen]

    def similar(self, item: int, k: int, exclude: Collection[int] = frozenset()) -> list[Scored]:
        """Return up to ``k`` items bought together with ``item`` (then look-alikes), for a product page.

        Falls back to best sellers when the item has no neighbours; never returns
        ``item`` itself, out-of-stock or excluded items.
        """
        n = len(self.items)
        if not 0 <= item < n:
            return self.popular(k, exclude)
        rows = np.array([item], dtype=np.int64)
        one = np.ones(1)
        _, c_cols, c_vals = _gather_rows(self.neighbours, rows, one)
        _, t_cols, t_vals = _gather_rows(self.content, rows, one)
        collab = np.bincount(c_cols, weights=c_vals, minlength=n)
        content = np.bincount(t_cols, weights=t_vals, minlength=n)
        if collab.max(initial=0) > 0:
            collab /= collab.max()
        if content.max(initial=0) > 0:
            content /= content.max()
        pop = self.popular_scores.astype(np.float64)
        score = collab + 0.3 * content + 1e-3 * pop
        allowed = self._allowed(exclude, None)
        allowed[item] = False
        chosen = self._top(np.where((collab > 0) | (content > 0), score, 0.0), allowed, k)
        title = self._title(item)
        out = []
        for j in chosen:
            if collab[j] >= 0.3 * content[j]:
                out.append(Scored(int(j), float(score[j]), f"Often bought with {title}", "item-item"))
            else:
                out.append(Scored(int(j), float(score[j]), f"Similar to {title}", "content"))
        if len(out) < k:
            seen = {s.item for s in out} | {item}
            more = self.popular(k - len(out) + len(seen), exclude)
            out.extend(s for s in more if s.item not in seen)
        return out[:k]

    # ----------------------------------------------------------------- explanations and rules
    def _explain(self, chosen, score, parts, pop_source, uniq, weight, strongest, gathered) -> list[Scored]:
        p = self.params
        weights = {"personal": p["personal_weight"], "item-item": p["item_weight"], "content": p["content_weight"], pop_source: p["popular_weight"]}
        contrib = {
            name: (w * parts[name][chosen] if parts[name] is not None else np.zeros(len(chosen)))
            for name, w in weights.items()
        }
        names = list(contrib)
        stacked = np.stack([contrib[name] for name in names]) if len(chosen) else np.zeros((len(names), 0))
        winner = stacked.argmax(axis=0) if len(chosen) else np.zeros(0, dtype=np.int64)
        cause = {
            "item-item": self._causes(self.neighbours, chosen, uniq, weight, gathered.get("item-item")),
            "content": self._causes(self.content, chosen, uniq, weight, gathered.get("content")),
        }
        kind_of = dict(zip(uniq.tolist(), strongest.tolist(), strict=True))
        out = []
        for j, w in zip(chosen.tolist(), winner.tolist(), strict=True):
            source = names[w]
            if source == "personal":
                reason = REASON_PERSONAL[kind_of[j]]
            elif source in cause and j in cause[source]:
                h = cause[source][j]
                if source == "content":
                    reason = f"Similar to {self._title(h)}"
                else:
                    reason = REASON_BECAUSE[kind_of[h]].format(self._title(h))
            elif source == "segment":
                reason = "Popular with customers like you"
            else:
                source, reason = "popular", "Popular right now"
            out.append(Scored(j, float(score[j]), reason, source))
        return out

    def _forest(self, view: str) -> Forest | None:
        return self.ranker_new if view == "new" and self.ranker_new is not None else self.ranker

    def _explain_learned(self, strategy: str, chosen: np.ndarray, score: np.ndarray, batch, keys, x, segment: str | None,
                         forest: Forest | None, read: dict | None = None) -> list[Scored]:
        """Reasons for a list from the ranker or a baseline: from the feature family that raised
        each item's score most (ranker), or from what the baseline counts."""
        n = len(self.items)
        hist = batch.items
        pos = {int(i): r for r, i in enumerate(hist.tolist())}
        has_segment = segment is not None and segment in self._segment_index
        chosen_l = chosen.tolist()
        families: dict[int, list[str]] = {}
        if strategy == RANKER and len(chosen):
            cand = keys % n
            at = np.searchsorted(cand, chosen)
            at = np.minimum(at, max(len(cand) - 1, 0))
            found = (cand[at] == chosen) if len(cand) else np.zeros(len(chosen), dtype=bool)
            if found.any():
                contrib = forest.contributions(x[at[found]])
                by_family = contrib @ _FAMILY_MATRIX  # rows x families
                order = np.argsort(-by_family, axis=1, kind="stable")
                for r, j in enumerate(chosen[found].tolist()):
                    families[j] = [_FAMILY_NAMES[o] for o in order[r] if by_family[r, o] > 0]
        elif strategy == "buy-again":
            families = dict.fromkeys(chosen_l, ["rhythm"])
        elif strategy in ("item-knn", "ease"):
            families = dict.fromkeys(chosen_l, ["item-item"])
        causes: dict[str, dict[int, int]] = {}

        def cause(name: str, j: int) -> int | None:
            if name not in causes:
                table = self.neighbours if name == "item-item" else self.content
                causes[name] = self._causes(table, chosen, hist, batch.personal, (read or {}).get(name))
            return causes[name].get(j)

        out = []
        for j in chosen_l:
            reason, source = None, None
            r = pos.get(j)
            for fam in families.get(j, []) + ["personal", "popular"]:
                if fam == "rhythm" and r is not None and batch.occasions[r] > 0:
                    occ = batch.occasions[r]
                    if occ >= 2:
                        days = (batch.last_bought[r] - batch.first_bought[r]) / DAY / (occ - 1)
                        reason = f"You buy this {every(max(days, 1.0))}"
                    else:
                        reason = REASON_PERSONAL[PURCHASE]
                    source = "personal"
                elif fam == "personal" and r is not None:
                    reason, source = REASON_PERSONAL[int(batch.strongest[r])], "personal"
                elif fam == "item-item" and (h := cause("item-item", j)) is not None:
                    reason, source = REASON_BECAUSE[int(batch.strongest[pos[h]])].format(self._title(h)), "item-item"
                elif fam == "content" and (h := cause("content", j)) is not None:
                    reason, source = f"Similar to {self._title(h)}", "content"
                elif fam == "segment" and has_segment:
                    reason, source = "Popular with customers like you", "segment"
                elif fam == "trend":
                    reason, source = "Trending this week", "popular"
                elif fam == "popular":
                    reason, source = "Popular right now", "popular"
                if reason:
                    break
            out.append(Scored(j, float(score[j]), reason, source))
        return out

    @staticmethod
    def _causes(table: sp.csr_matrix, chosen: np.ndarray, uniq: np.ndarray, weight: np.ndarray,
                gathered: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[int, int]:
        """For each chosen item, the history item that voted for it most strongly
        (``gathered``: the table's rows of ``uniq`` with unit weights, if already read)."""
        if len(uniq) == 0 or len(chosen) == 0:
            return {}
        pos, cols, raw = gathered if gathered is not None else _gather_rows(table, uniq, np.ones(len(uniq)))
        wanted = np.zeros(table.shape[1], dtype=bool)
        wanted[chosen] = True
        hit = wanted[cols]
        pos, cols = pos[hit], cols[hit]
        vals = raw[hit] * weight[pos]
        order = np.lexsort((uniq[pos], -vals, cols))
        first = np.ones(len(order), dtype=bool)
        first[1:] = cols[order][1:] != cols[order][:-1]
        best = order[first]
        return dict(zip(cols[best].tolist(), uniq[pos[best]].tolist(), strict=True))

    @staticmethod
    def _apply_rules(score: np.ndarray, rules: Rules, uniq: np.ndarray) -> np.ndarray:
        score = score.copy()
        n = len(score)
        for i, factor in rules.boost.items():
            if 0 <= i < n:
                score[i] *= float(factor)
        for i in rules.bury:
            if 0 <= i < n and score[i] > 0:
                # keep buried items ranked among themselves but after everything else
                score[i] = 1e-9 * score[i]
        return score

    def _place_rules(self, ranked: list[Scored], rules: Rules, uniq: np.ndarray, allowed: np.ndarray, k: int) -> list[Scored]:
        head: list[Scored] = []
        seen: set[int] = set()
        for i in rules.pin:
            if 0 <= i < len(allowed) and allowed[i] and i not in seen:
                head.append(Scored(int(i), float("inf"), "Recommended by the shop", "rule"))
                seen.add(int(i))
        in_history = set(uniq.tolist())
        for a, shows in rules.bought_show.items():
            if a in in_history:
                for b in shows:
                    if 0 <= b < len(allowed) and allowed[b] and b not in seen:
                        head.append(Scored(int(b), float("inf"), f"Goes well with {self._title(a)}", "rule"))
                        seen.add(int(b))
        return (head + [s for s in ranked if s.item not in seen])[:k]

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` (one ``.npz`` file: arrays and JSON, no pickled code), replacing it atomically."""
        path = Path(path)
        parts = self.parts
        meta = {
            "format": FORMAT_VERSION,
            "params": self.params,
            "fitted_at": self.fitted_at,
            "clock_offset": self.clock_offset,
            "item_model": self.item_model,
            "items": {
                "ids": self.items.ids,
                "titles": self.items.titles,
                "categories": self.items.categories,
                "descriptions": self.items.descriptions,
            },
            "segments": parts.segment_names,
            "serve": self.serve,
            "check": self.check,
            "features": [name for name, _ in FEATURES],
            "pages": self.page_tables.choice,
        }
        n = len(self.items)
        seg = parts.segment_popular if parts.segment_popular is not None else np.zeros((0, n), dtype=np.float32)
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "in_stock": np.asarray(self.items.in_stock, dtype=bool),
            "prices": np.asarray(self.items.prices if self.items.prices is not None else np.full(n, np.nan), dtype=np.float64),
            "segment_popular": seg.astype(np.float32),
        }
        for name in _PART_VECTORS:
            arrays[name] = np.asarray(getattr(parts, name))
        tables = (("nb", parts.neighbours), ("ct", parts.content), ("knn", parts.knn),
                  ("tg", self.page_tables.together), ("cv", self.page_tables.coview))
        if self.page_tables.learned is not None:
            tables += (("tl", self.page_tables.learned),)
        if self.page_tables.similar is not None:
            tables += (("sl", self.page_tables.similar),)
        for name, table in tables:
            arrays[f"{name}_indptr"] = table.indptr.astype(np.int64)
            arrays[f"{name}_indices"] = table.indices.astype(np.int32)
            arrays[f"{name}_data"] = table.data.astype(np.float32)
        for prefix, forest in (("ranker", self.ranker), ("ranker_new", self.ranker_new), ("activity", self.activity)):
            if forest is not None:
                arrays.update(forest.arrays(prefix))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buf.getvalue())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recommender:
        """Read a model written by :meth:`save`; it recommends exactly as the saved one did.

        A model of the previous format (no ranker) loads as the fixed blend it served."""
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
            fmt = meta.get("format")
            if fmt not in (1, FORMAT_VERSION):
                raise ValueError(f"{path}: unsupported model format {fmt!r}")
            if fmt == FORMAT_VERSION and meta.get("features") != [name for name, _ in FEATURES]:
                raise ValueError(f"{path}: the model was trained with other features; train it again")
            n = len(meta["items"]["ids"])
            items = ItemTable(
                ids=meta["items"]["ids"],
                titles=meta["items"]["titles"],
                categories=meta["items"]["categories"],
                descriptions=meta["items"]["descriptions"],
                in_stock=z["in_stock"].copy(),
                prices=z["prices"].copy() if "prices" in z else None,
            )
            tables = {
                name: sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]), shape=(n, n))
                for name in ("nb", "ct", "knn", "tg", "cv", "tl", "sl") if f"{name}_indptr" in z
            }
            seg = z["segment_popular"]
            if fmt == 1:
                params = {k: v for k, v in meta["params"].items() if k in DEFAULT_PARAMS}
                vectors = {"popular": z["popular"].copy(), "repeat_rate": z["repeat_rate"].copy(), "trend": z["trend"].copy()}
                parts = _parts_of_v1(n, meta, vectors, tables, seg)
                return cls(items, _params(params), parts)
            vectors = {name: z[name].copy() for name in _PART_VECTORS}
            parts = Parts(
                now=meta["fitted_at"], item_model=meta["item_model"], neighbours=tables["nb"], knn=tables["knn"],
                content=tables["ct"], segment_names=list(meta["segments"]),
                segment_popular=seg.copy() if len(meta["segments"]) else None, **vectors,
            )
            learned = Learned(parts, Forest.from_arrays(z, "ranker"), Forest.from_arrays(z, "ranker_new"), Forest.from_arrays(z, "activity"),
                              meta["serve"], meta["check"])
            pages = PageTables(tables["tg"], tables["cv"], meta.get("pages") or {}, tables.get("tl"), tables.get("sl")) if "tg" in tables and "cv" in tables else None
            model = cls(items, _params(meta["params"]), parts, learned, pages)
            model.clock_offset = float(meta.get("clock_offset") or 0.0)
            return model


def read_summary(path: str | os.PathLike) -> dict:
    """What a saved model serves and its self-check, read without loading its arrays:
    ``{"serve": {...}, "check": {...}, "description": str, "fitted_at": float}``."""
    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode("utf-8"))
    serve = meta.get("serve") or {view: BLEND for view in VIEWS}
    check = meta.get("check") or {}
    description = describe_check(check, serve)
    pages = describe_pages(meta.get("pages") or {})
    if pages:
        description += " " + pages
    return {"serve": serve, "check": check, "description": description, "fitted_at": meta.get("fitted_at")}


_PART_VECTORS = ("buyers", "popular", "popular_7", "trend", "repeat_rate", "interval", "price", "first_seen", "category", "donor", "donor_similarity")


def _parts_of_v1(n: int, meta: dict, vectors: dict, tables: dict, seg: np.ndarray) -> Parts:
    """The parts of a first-format model (a blend without ranker): what it did not store is empty."""
    empty = sp.csr_matrix((n, n), dtype=np.float32)
    return Parts(
        now=meta["fitted_at"], item_model=meta["item_model"], neighbours=tables["nb"], knn=empty, content=tables["ct"],
        buyers=vectors["popular"].astype(np.float64), popular=vectors["popular"], popular_7=vectors["popular"],
        trend=vectors["trend"], repeat_rate=vectors["repeat_rate"], interval=np.full(n, NONE), price=np.full(n, NONE),
        first_seen=np.full(n, np.inf), category=np.full(n, -1, dtype=np.int64), donor=np.full(n, -1, dtype=np.int64),
        donor_similarity=np.zeros(n), segment_names=list(meta["segments"]),
        segment_popular=seg.copy() if len(meta["segments"]) else None,
    )


def describe_check(check: dict, serve: dict) -> str:
    """The self-check's outcome in the owner's words, e.g. "Serves the learned ranker in both views:
    on the last 30 days it found 41.2 % of what 1,234 customers bought (best sellers: 9.1 %) ..."."""
    if not check or "recall" not in check:
        note = (check or {}).get("note") or "not checked"
        return f"Serves the fixed blend ({note})."
    rec = check["recall"]
    days = check.get("window_days")
    parts = []
    for view, label in (("all", "all purchases"), ("new", "only new items")):
        chosen = serve.get(view, BLEND)
        best = check["lead"][view]["best_baseline"]
        mine = rec[view].get(chosen)
        base = rec[view][best]
        if chosen == RANKER:
            lead = (mine / base - 1.0) * 100 if base > 0 else 0.0
            wider = check.get("candidates") or {}
            more = (f" with {wider['wider']} best sellers among its candidates"
                    if wider.get("popular", {}).get(view) == wider.get("wider") != wider.get("trained") else "")
            parts.append(
                f"{label}: the learned ranker{more}, {mine:.1%} of purchases found in the top 20 vs {base:.1%} for "
                f"{STRATEGY_LABELS[best]} ({lead:+.0f} %)"
            )
        else:
            ranker = rec[view].get(RANKER)
            lost = f"; the ranker reached {ranker:.1%}" if ranker is not None else ""
            parts.append(f"{label}: {STRATEGY_LABELS[chosen]}, {base:.1%} of purchases found in the top 20{lost}")
    return f"Checked on the last {days:g} days ({check['customers']:,} customers) — " + "; ".join(parts) + "."


__all__ = ["DAY", "DEFAULT_PARAMS", "Recommender", "Rules", "Scored", "describe_check", "every", "read_summary"]
