"""The learned page tables' candidate pairs (bought together, similar items) are built from sparse
rows: checked here against plain dense arithmetic over the whole catalogue, and shown to be the
same however the anchors are cut into blocks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from personalize.recommend.data import PURCHASE, InteractionLog
from personalize.recommend.strategies import (
    LEARNED_FEATURES,
    PAGE_PARAMS,
    SIMILAR_FEATURES,
    _SimilarSnapshot,
    _Snapshot,
)

DAY = 86400.0
CHOICE = {"alpha": 0.5, "gamma": 0.5, "half_life_days": 30.0, "content": 0.4, "beta": 1.0,
          "similar_together_share": 0.6, "similar_content": 0.3}


def _shop(seed: int = 5, n: int = 120, orders: int = 1500, days: int = 120, customers: int = 400):
    """Orders of a pair (2k, 2k+1, sometimes 2k+2 instead) plus a random item, popular pairs
    first; look-alikes pair i with i + 7 for every third item, some of them weaker."""
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.3, size=orders) % (n // 2)
    u, i, t = [], [], []
    for o in range(orders):
        k = int(popular[o])
        items = {2 * k, 2 * k + 1 if rng.random() < 0.8 else (2 * k + 2) % n, int(rng.integers(n))}
        u += [o % customers] * len(items)
        i += sorted(items)
        t += [o * days / orders * DAY] * len(items)
    log = InteractionLog(np.array(u, np.int32), np.array(i, np.int32), np.full(len(u), PURCHASE, np.int8), np.array(t),
                         np.ones(len(u), np.float32), customers, n)
    r = [a for a in range(0, n, 3)] + [(a + 7) % n for a in range(0, n, 3)]
    c = [(a + 7) % n for a in range(0, n, 3)] + [a for a in range(0, n, 3)]
    content = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n, n))
    content.data[::4] *= 0.5
    return log, content, days * DAY


def _dense(m: sp.spmatrix) -> np.ndarray:
    return np.asarray(m.toarray(), dtype=np.float32)


def _scaled(rows: np.ndarray) -> np.ndarray:
    top = rows.max(axis=1, keepdims=True)
    return rows / np.where(top > 0, top, 1.0).astype(np.float32)


def _place(score: np.ndarray, eligible: np.ndarray) -> dict[int, int]:
    """Each eligible column's place by score (highest first, ties to the lower column)."""
    cols = [j for j in np.argsort(-score, kind="stable") if eligible[j]]
    return {int(j): i for i, j in enumerate(cols)}


def _all_pairs(snapshot, setting: str, k: int, names: tuple[str, ...]):
    """The snapshot (``k`` candidates) and its pairs of every anchor, by ``(anchor, candidate)``."""
    log, content, now = _shop()
    snap = snapshot(log, now, {**PAGE_PARAMS, setting: k}, CHOICE, content)
    a, c, x = snap.pairs(np.arange(snap.n))
    assert len(a) and x.shape[1] == len(names) and np.isfinite(x).all()
    assert np.all(np.diff(a * snap.n + c) > 0), "anchors, then candidates, in ascending order"
    return snap, content, {(int(i), int(j)): row for i, j, row in zip(a, c, x, strict=True)}


def test_bought_together_pairs_match_dense_arithmetic():
    k = 6
    snap, content, got = _all_pairs(_Snapshot, "learned_candidates", k, LEARNED_FEATURES)
    n = snap.n
    co = [_dense(snap.bt @ sp.diags(w) @ snap.b) for w in snap.weights]
    for m in co:
        np.fill_diagonal(m, 0.0)
    chosen = co[0] * snap.discount[None, :]
    scaled = _scaled(chosen)
    looks = _scaled(_dense(content))
    base = scaled + np.float32(CHOICE["content"]) * looks + snap.tie[None, :]
    want = {}
    for i in range(n):
        eligible = (chosen[i] > 0) | (looks[i] > 0)
        eligible[i] = False
        place = _place(base[i], eligible)
        for j, at in place.items():
            if (at < k and chosen[i, j] > 0) or looks[i, j] > 0:
                c1 = co[1][i, j]
                want[(i, j)] = [chosen[i, j], scaled[i, j], c1, c1 / (snap.orders[i] + 1), c1 / (snap.orders[j] + 1), co[2][i, j],
                                looks[i, j], snap.orders[j], snap.recent[j], snap.orders[i], min(at, k), base[i, j]]
    assert set(got) == set(want)
    for pair, row in want.items():
        np.testing.assert_allclose(got[pair], np.asarray(row, dtype=np.float32), rtol=1e-6, atol=0)
    # a look-alike never bought with its anchor is still a candidate (the shop's look-alike weight ranks it)
    never = [(i, j) for (i, j) in want if co[1][i, j] == 0]
    look, counts = LEARNED_FEATURES.index("look_alike"), LEARNED_FEATURES.index("counts")
    assert never and all(got[q][look] > 0 and got[q][counts] == 0 for q in never)
    assert any(got[q][LEARNED_FEATURES.index("counts_rank")] == k for q in never)  # and some rank beyond the counts' best


def test_similar_pairs_match_dense_arithmetic():
    k = 8
    snap, content, got = _all_pairs(_SimilarSnapshot, "similar_learned_candidates", k, SIMILAR_FEATURES)
    n = snap.n
    chosen = _dense(snap.bt @ sp.diags(snap.weights[0]) @ snap.b)
    np.fill_diagonal(chosen, 0.0)
    chosen *= snap.discount[None, :]
    counts = _dense(snap.bt @ sp.diags(snap.weights[1]) @ snap.b)
    cos = _dense(snap.xt @ snap.x) / snap.norm[None, :] / snap.norm[:, None]
    np.fill_diagonal(cos, 0.0)
    looks = _scaled(_dense(content))
    w = snap.weights_mix
    mix = w["also-chosen"] * _scaled(cos) + w["together"] * _scaled(chosen) + w["content"] * looks + snap.tie[None, :]
    want = {}
    for i in range(n):
        own = np.arange(n) == i
        ordered = _place(mix[i], (mix[i] > snap.tie + 1e-12) & ~own)
        nearest = _place(cos[i], (cos[i] > 0) & ~own)
        for j in range(n):
            rank = ordered.get(j, k)
            if j != i and (rank < k or nearest.get(j, 20) < 20 or looks[i, j] > 0):
                want[(i, j)] = (min(rank, k), cos[i, j], counts[i, j], mix[i, j])
    assert set(got) == set(want)
    col = {name: SIMILAR_FEATURES.index(name) for name in ("mix_rank", "also_chosen", "counts", "mix_score")}
    for pair, (rank, cosine, count, score) in want.items():
        row = got[pair]
        assert row[col["mix_rank"]] == rank
        np.testing.assert_allclose(row[[col["also_chosen"], col["counts"], col["mix_score"]]], [cosine, count, score], rtol=1e-5)


@pytest.mark.parametrize("snapshot", [_Snapshot, _SimilarSnapshot])
def test_pairs_are_the_same_however_the_anchors_are_cut(snapshot):
    log, content, now = _shop()
    snap = snapshot(log, now, dict(PAGE_PARAMS), CHOICE, content)
    whole = snap.pairs(np.arange(snap.n))
    blocks = snap.blocks
    snap.blocks = lambda anchors, extra=None: blocks(anchors, extra, budget=1)  # one anchor a block
    one_by_one = snap.pairs(np.arange(snap.n))
    for left, right in zip(whole, one_by_one, strict=True):
        np.testing.assert_array_equal(left, right)
    # repeated and unordered anchors give each anchor's rows once
    a, _c, _x = snap.pairs(np.array([7, 3, 7, 3, 50]))
    assert set(np.unique(a).tolist()) <= {3, 7, 50} and len(a) == sum(int((whole[0] == q).sum()) for q in (3, 7, 50))


def test_no_purchases_give_no_pairs():
    log, _content, now = _shop()
    empty = log.select(log.kind != PURCHASE)  # this shop's log holds purchases only
    a, c, x = _Snapshot(empty, now, dict(PAGE_PARAMS), CHOICE, None).pairs(np.arange(empty.n_items))
    assert len(a) == len(c) == len(x) == 0 and x.shape[1] == len(LEARNED_FEATURES)


def test_bought_together_table_is_the_same_however_the_items_are_cut():
    from personalize.recommend.strategies import basket_weights, baskets, pair_table

    log, _content, now = _shop()
    b, when = baskets(log)
    weights = basket_weights(b, when, now, 0.5, 30.0)
    whole = pair_table(b, 5, 0.5, 1.0, weights)
    for budget, block in ((1, 4096), (50, 7), (10 ** 9, 1)):
        cut = pair_table(b, 5, 0.5, 1.0, weights, block=block, budget=budget)
        assert (cut != whole).nnz == 0
    # each row: the 5 best of the discounted co-occurrence, the item itself left out
    co = _dense(b.T @ sp.diags(weights.astype(np.float32)) @ b)
    np.fill_diagonal(co, 0.0)
    score = co / (np.asarray(b.sum(axis=0)).ravel() + 1.0) ** 0.5
    table = whole.toarray()
    for i in range(b.shape[1]):
        best = np.sort(score[i][score[i] > 0])[::-1][:5]
        np.testing.assert_allclose(np.sort(table[i][table[i] > 0])[::-1], best, rtol=1e-5)
