"""The neighbour tables (cosine, content) and the ranker's fit on rows kept in pieces: the same
results however the work is cut into blocks, checked against plain dense arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from personalize.recommend.data import ItemTable
from personalize.recommend.engine import DEFAULT_PARAMS
from personalize.recommend.models import content_neighbours, cosine_neighbours
from personalize.recommend.ranker import fit_forest, gather_rows


def skewed_baskets(users: int = 400, items: int = 120, seed: int = 4) -> sp.csr_matrix:
    """Binary user x item rows where item 0 is in nearly every basket and the rest fall off."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, items + 1) ** 0.8
    p[0] = 30.0
    p /= p.sum()
    rows, cols = [], []
    for u in range(users):
        picked = np.unique(rng.choice(items, size=rng.integers(1, 12), p=p))
        rows += [u] * len(picked)
        cols += picked.tolist()
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(users, items))
    x.sum_duplicates()
    return x


def dense_top_k(sim: np.ndarray, k: int) -> dict[int, dict[int, float]]:
    """Each row's k largest positive entries off the diagonal (ties: any of them)."""
    out = {}
    for r, row in enumerate(sim):
        row = row.copy()
        row[r] = 0.0
        order = np.argsort(-row, kind="stable")
        out[r] = {int(c): float(row[c]) for c in order[:k] if row[c] > 0}
    return out


def table_rows(table: sp.csr_matrix) -> dict[int, dict[int, float]]:
    return {r: dict(zip(table.indices[table.indptr[r]:table.indptr[r + 1]].tolist(),
                        table.data[table.indptr[r]:table.indptr[r + 1]].tolist(), strict=True))
            for r in range(table.shape[0])}


@pytest.mark.parametrize("budget", [1, 500, 8_000_000])
def test_cosine_neighbours_match_dense_cosine_whatever_the_block_budget(budget):
    x = skewed_baskets()
    dense = x.toarray()
    norms = np.sqrt((dense ** 2).sum(axis=0))
    norms[norms == 0] = 1.0
    sim = (dense.T @ dense) / norms[:, None] / norms[None, :]
    k = 7
    want = dense_top_k(sim, k)
    got = table_rows(cosine_neighbours(x, k, budget=budget))
    for item in range(x.shape[1]):
        mine, theirs = got[item], want[item]
        assert item not in mine  # never its own neighbour
        assert len(mine) == len(theirs)
        # the same values (ties may pick other items of the same value)
        assert sorted(mine.values()) == pytest.approx(sorted(theirs.values()), rel=1e-5)
        for c, v in mine.items():
            assert v == pytest.approx(sim[item, c], rel=1e-5)
    table = cosine_neighbours(x, k, budget=budget)
    assert table.dtype == np.float32 and table.has_sorted_indices


def test_cosine_blocks_do_not_change_the_table():
    x = skewed_baskets(users=600, items=300, seed=9)
    whole = cosine_neighbours(x, 25)
    for budget, block in ((1, 2048), (2_000, 2048), (8_000_000, 16)):
        cut = cosine_neighbours(x, 25, block=block, budget=budget)
        assert (whole != cut).nnz == 0


def test_content_neighbours_keep_the_most_similar_titles():
    titles = ["red wool scarf", "red wool scarf large", "blue cotton shirt", "blue cotton shirt slim", "garden hose"]
    items = ItemTable([f"s{i}" for i in range(5)], titles, ["acc", "acc", "top", "top", "garden"], [""] * 5, np.ones(5, dtype=bool))
    rows = table_rows(content_neighbours(items, 1))
    assert list(rows[0]) == [1] and list(rows[1]) == [0]
    assert list(rows[2]) == [3] and list(rows[3]) == [2]
    assert rows[4] == {}  # nothing alike


def test_gather_rows_takes_rows_across_pieces_in_order():
    pieces = [np.arange(12, dtype=float).reshape(4, 3), np.arange(12, 18, dtype=float).reshape(2, 3), np.arange(18, 27, dtype=float).reshape(3, 3)]
    stacked = np.vstack(pieces)
    index = np.array([0, 3, 4, 5, 8])
    assert np.array_equal(gather_rows(pieces, index), stacked[index])
    assert gather_rows(pieces, np.zeros(0, dtype=np.int64)).shape == (0, 3)


def test_a_forest_fitted_on_pieces_and_picked_rows_equals_one_fitted_on_the_stacked_copy():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6000, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.7, size=6000)) > 1.2
    group = np.repeat(np.arange(600), 10)
    p = {**DEFAULT_PARAMS, "ranker_max_rows": 2000, "ranker_trees": 30}
    pieces = [x[:2500], x[2500:4000], x[4000:]]
    probe = rng.normal(size=(200, 5))
    stacked, _ = fit_forest(x, y, p, group=group)
    cut, _ = fit_forest(pieces, y, p, group=group)
    assert np.allclose(stacked.predict(probe), cut.predict(probe))
    picked = np.flatnonzero(x[:, 2] > 0)
    alone, _ = fit_forest(x[picked], y[picked], p, group=group[picked])
    by_rows, _ = fit_forest(pieces, y, p, group=group, rows=picked)
    assert np.allclose(alone.predict(probe), by_rows.predict(probe))
    assert not np.allclose(stacked.predict(probe), by_rows.predict(probe))  # the rows did matter
