"""The serving engine: one visitor's live history in, a ranked and explained list out.

A fitted :class:`Recommender` holds only small arrays: a bounded neighbour table
per item (collaborative and content), popularity vectors, the catalogue, and
the blend weights. ``recommend`` never retrains: the visitor's history is passed
in on every call, so their newest click counts at once.

The score of item ``j`` for a visitor is a blend of

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
from .models import (
    DAY,
    content_neighbours,
    cosine_neighbours,
    decay,
    ease_neighbours,
    kind_weights,
    popularity,
    repeat_rate,
    trend,
    user_item_matrix,
)

FORMAT_VERSION = 1

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
    "item_half_life_days": 60.0,  # fade old co-purchases when learning neighbours (0 = no fading)
    "popular_half_life_days": 30.0,
    "max_history": 500,  # newest entries of a history used when serving
    # blend tuning on a validation window just before ``now`` (see tuning.py)
    "tune": True,
    "validation_days": 30.0,
    "min_segment_users": 20,
    # filled in by tuning: validation Recall@20 of the chosen blend, for the record
    "tuned_recall_all": None,
    "tuned_recall_new": None,
    "max_segments": 50,
}

REASON_PERSONAL = {PURCHASE: "You bought this before", CART: "You added this to your cart", VIEW: "You viewed this recently"}
REASON_BECAUSE = {PURCHASE: "Often bought with {}", CART: "Goes with {} in your cart", VIEW: "Because you viewed {}"}


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

    def __init__(
        self,
        items: ItemTable,
        params: dict,
        neighbours: sp.csr_matrix,
        content: sp.csr_matrix,
        popular: np.ndarray,
        segment_popular: dict[str, np.ndarray],
        fitted_at: float,
        item_model: str,
        repeat_rate: np.ndarray | None = None,
        trend: np.ndarray | None = None,
    ):
        self.items = items
        self.params = params
        self.neighbours = neighbours
        self.content = content
        self.popular_scores = popular
        self.segment_popular = segment_popular
        self.fitted_at = fitted_at
        self.item_model = item_model
        self.repeat_rate = np.ones(len(items), dtype=np.float32) if repeat_rate is None else repeat_rate
        self.trend = np.ones(len(items), dtype=np.float32) if trend is None else trend
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
    ) -> Recommender:
        """Learn from ``log`` (everything up to ``now``) for the catalogue ``items``.

        ``now`` defaults to the newest interaction. ``params`` overrides entries of
        :data:`DEFAULT_PARAMS`; with ``tune`` on (the default) the blend weights and
        the personal half life are chosen on the ``validation_days`` before ``now``
        (see :mod:`personalize.recommend.tuning`) and the model is then refitted on
        the whole log. ``user_segments[u]`` names user ``u``'s segment (e.g. a
        country) for "popular with customers like you". Deterministic.
        """
        if log.n_items != len(items):
            raise ValueError(f"log has {log.n_items} items but the catalogue has {len(items)}")
        p = _params(params)
        if now is None:
            now = float(log.ts.max()) if len(log) else time.time()
        log = log.select(log.ts <= now) if len(log) and log.ts.max() > now else log
        content = None
        if p["tune"]:
            from .tuning import tune_blend

            # the content table depends on the catalogue only: build it once for both fits
            content = content_neighbours(items, int(p["content_neighbours"])) if len(items) else None
            p = tune_blend(log, items, now, p, content=content)
        return cls._fit_parts(log, items, now, p, user_segments, content=content)

    @classmethod
    def _fit_parts(
        cls,
        log: InteractionLog,
        items: ItemTable,
        now: float,
        p: dict,
        user_segments: Sequence[str] | None,
        *,
        content: sp.csr_matrix | None = None,
    ) -> Recommender:
        weights = kind_weights(log, _kind_table(p)) * decay(now - log.ts, p["item_half_life_days"])
        x = user_item_matrix(log, weights)
        x.data = np.minimum(x.data, 1.0)
        x.eliminate_zeros()
        n = len(items)
        if n == 0:
            neighbours = sp.csr_matrix((0, 0), dtype=np.float32)
            model = "none"
        elif n <= p["ease_max_items"]:
            neighbours = ease_neighbours(x, p["ease_lambda"], int(p["neighbours"]), signed=bool(p["negative_neighbours"]))
            model = "ease"
        else:
            neighbours = cosine_neighbours(x, int(p["cosine_neighbours"]))
            model = "cosine"
        if p["content_weight"] <= 0 or not n:
            content = sp.csr_matrix((n, n), dtype=np.float32)
        elif content is None:
            content = content_neighbours(items, int(p["content_neighbours"]))
        pop = popularity(log, now, p["popular_half_life_days"])
        segments: dict[str, np.ndarray] = {}
        if user_segments is not None and len(log):
            names = np.asarray(list(user_segments), dtype=object)
            seg_of_row = names[log.user]
            counts: dict[str, int] = {}
            for name in names:
                if name:
                    counts[name] = counts.get(name, 0) + 1
            ranked = sorted((c for c in counts.items() if c[1] >= p["min_segment_users"]), key=lambda c: (-c[1], c[0]))
            for name, _ in ranked[: int(p["max_segments"])]:
                segments[name] = popularity(log.select(seg_of_row == name), now, p["popular_half_life_days"])
        return cls(items, p, neighbours, content, pop, segments, now, model, repeat_rate(log), trend(log, now))

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
    ) -> list[Scored]:
        """Return up to ``k`` items for a visitor with this ``history`` (item indexes, oldest first; as
        :class:`HistoryEntry` steps or, cheaper for a server, as :class:`HistoryArrays`), best first.

        Never returns out-of-stock items, items in ``exclude`` or in ``rules.exclude``.
        With no usable history this is :meth:`popular`. ``now`` (unix seconds) only
        sets the age of history entries and defaults to the newest of them. The
        result depends only on the arguments and the fitted model.
        """
        if not isinstance(history, HistoryArrays):
            history = HistoryArrays.of(history)
        uniq, weight, context, strongest = self._history_arrays(history, now)
        allowed = self._allowed(exclude, rules)
        score, parts, pop_source, gathered = self._blend(uniq, weight, context, segment)
        if rules is not None:
            score = self._apply_rules(score, rules, uniq)
        chosen = self._top(score, allowed, k)
        out = self._explain(chosen, score, parts, pop_source, uniq, context, strongest, gathered)
        if rules is not None:
            out = self._place_rules(out, rules, uniq, allowed, k)
        return out

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
        """Write the model to ``path`` (one ``.npz`` file, no pickled code), replacing it atomically."""
        path = Path(path)
        meta = {
            "format": FORMAT_VERSION,
            "params": self.params,
            "fitted_at": self.fitted_at,
            "item_model": self.item_model,
            "items": {
                "ids": self.items.ids,
                "titles": self.items.titles,
                "categories": self.items.categories,
                "descriptions": self.items.descriptions,
            },
            "segments": list(self.segment_popular),
        }
        n = len(self.items)
        seg = np.stack(list(self.segment_popular.values())) if self.segment_popular else np.zeros((0, n), dtype=np.float32)
        arrays = {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "in_stock": np.asarray(self.items.in_stock, dtype=bool),
            "popular": self.popular_scores.astype(np.float32),
            "repeat_rate": self.repeat_rate.astype(np.float32),
            "trend": self.trend.astype(np.float32),
            "segment_popular": seg.astype(np.float32),
        }
        for name, table in (("nb", self.neighbours), ("ct", self.content)):
            arrays[f"{name}_indptr"] = table.indptr.astype(np.int64)
            arrays[f"{name}_indices"] = table.indices.astype(np.int32)
            arrays[f"{name}_data"] = table.data.astype(np.float32)
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
        """Read a model written by :meth:`save`; it recommends exactly as the saved one did."""
        with np.load(Path(path), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
            if meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported model format {meta.get('format')!r}")
            n = len(meta["items"]["ids"])
            items = ItemTable(
                ids=meta["items"]["ids"],
                titles=meta["items"]["titles"],
                categories=meta["items"]["categories"],
                descriptions=meta["items"]["descriptions"],
                in_stock=z["in_stock"].copy(),
            )
            tables = {
                name: sp.csr_matrix((z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]), shape=(n, n))
                for name in ("nb", "ct")
            }
            seg = z["segment_popular"]
            segments = {name: seg[i].copy() for i, name in enumerate(meta["segments"])}
            return cls(items, _params(meta["params"]), tables["nb"], tables["ct"], z["popular"].copy(), segments, meta["fitted_at"], meta["item_model"], z["repeat_rate"].copy(), z["trend"].copy())


__all__ = ["DAY", "DEFAULT_PARAMS", "Recommender", "Rules", "Scored"]
