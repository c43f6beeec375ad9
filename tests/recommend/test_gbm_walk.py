"""The served tree walk (complete trees, one table per level) against a plain one-row-at-a-time walk.

The oracle below follows each row down each tree from its root, node by node, going right
when the feature is greater than the threshold (LightGBM's and scikit-learn's "<=" goes
left), and adds the change in the node's expected value to the split's feature. The
forests are real fitted ones, and the rows include features exactly equal to thresholds
and one floating-point step either side of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from personalize.recommend.gbm import COMPLETE_MAX_DEPTH, Forest, export, export_lightgbm


def oracle(forest: Forest, x: np.ndarray):
    """Per row: the leaf reached in each tree, the log-odds, and the per-feature contributions."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    leaves = np.zeros((len(x), forest.n_trees), dtype=np.int64)
    raw = np.zeros(len(x))
    contrib = np.zeros(x.shape)
    for r, row in enumerate(x):
        total = forest.baseline
        for t, root in enumerate(forest.roots.tolist()):
            node = root
            while forest.feature[node] >= 0:
                f = int(forest.feature[node])
                child = int(forest.right[node] if row[f] > forest.threshold[node] else forest.left[node])
                contrib[r, f] += forest.mean[child] - forest.mean[node]
                node = child
            leaves[r, t] = node
            total += forest.value[node]
        raw[r] = total
    return leaves, raw, contrib


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8))
    x[:, 2] = rng.integers(0, 6, n)  # a few distinct values: thresholds sit between them
    x[:, 5] = np.where(rng.random(n) < 0.3, -1.0, x[:, 5] * 100)  # NONE-style sentinel
    y = x[:, 0] + 0.4 * x[:, 2] / 5 + 0.3 * (x[:, 5] > 50) + 0.3 * rng.random(n) > 1.0
    return x, y


def _edge_rows(forest: Forest, x: np.ndarray, seed=1) -> np.ndarray:
    """Rows whose features sit exactly on the forest's thresholds, or one step either side."""
    rng = np.random.default_rng(seed)
    internal = np.flatnonzero(forest.feature >= 0)
    rows = []
    for node in rng.choice(internal, size=min(150, len(internal)), replace=False):
        f, thr = int(forest.feature[node]), float(forest.threshold[node])
        for v in (thr, np.nextafter(thr, -np.inf), np.nextafter(thr, np.inf)):
            row = x[rng.integers(len(x))].copy()
            row[f] = v
            rows.append(row)
    # every feature on some threshold of its own at once
    row = x[0].copy()
    for f in range(x.shape[1]):
        thr = forest.threshold[forest.feature == f]
        if len(thr):
            row[f] = thr[0]
    rows.append(row)
    return np.array(rows)


@pytest.fixture(scope="module")
def forests():
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _data()
    out = {"sklearn": export(HistGradientBoostingClassifier(max_iter=40, max_depth=6, random_state=0).fit(x, y))}
    lightgbm = pytest.importorskip("lightgbm")
    params = {"objective": "binary", "verbose": -1, "max_depth": 6, "num_leaves": 31, "min_data_in_leaf": 5, "seed": 0}
    out["lightgbm"] = export_lightgbm(lightgbm.train(params, lightgbm.Dataset(x, y.astype(int)), 60))
    return x, out


@pytest.mark.parametrize("name", ["sklearn", "lightgbm"])
def test_the_complete_tree_walk_reaches_the_leaves_a_row_by_row_walk_reaches(forests, name):
    x, by_name = forests
    forest = by_name[name]
    assert forest._levels is not None and forest.depth == 6
    rows = np.vstack([x[:300], _edge_rows(forest, x)])
    rows[5, 3] = np.nan  # NaN is read as 0, in both
    leaves, raw, contrib = oracle(forest, rows)
    assert np.array_equal(forest.leaves(rows), leaves)
    assert np.allclose(forest.raw(rows), raw, rtol=0, atol=1e-12)
    assert np.allclose(forest.predict(rows), 1 / (1 + np.exp(-raw)), rtol=0, atol=1e-12)
    assert np.allclose(forest.contributions(rows), contrib, rtol=0, atol=1e-12)
    # the ranking of the rows is the oracle's (apart from exact ties)
    got = forest.predict(rows)
    order = np.argsort(-got, kind="stable")
    want = np.argsort(-(1 / (1 + np.exp(-raw))), kind="stable")
    differ = order != want
    assert np.allclose(got[order[differ]], got[want[differ]], rtol=0, atol=1e-12)
    # and the node-by-node walk (used for deeper forests) agrees bit for bit
    node, plain = forest._walk(np.nan_to_num(rows, nan=0.0), track=True)
    assert np.array_equal(node, leaves)
    assert np.array_equal(forest.raw(rows), forest.baseline + forest.value[node].sum(axis=1))
    assert np.array_equal(forest.contributions(rows), plain)


def test_a_threshold_equal_to_the_feature_goes_left():
    # one tree: x0 <= 2.5 -> left (leaf 1.0), else right (leaf -1.0)
    forest = Forest([0, -1, -1], [2.5, 0, 0], [False] * 3, [1, 1, 2], [2, 1, 2], [0.0, 1.0, -1.0], [0.0, 1.0, -1.0], [0], 0.0)
    x = np.array([[2.5], [np.nextafter(2.5, 3)], [np.nextafter(2.5, 2)], [-np.inf], [np.nan], [np.inf]])
    assert forest.leaves(x)[:, 0].tolist() == [1, 2, 1, 1, 1, 2]
    assert forest.raw(x).tolist() == [1.0, -1.0, 1.0, 1.0, 1.0, -1.0]
    assert forest.contributions(x)[:, 0].tolist() == [1.0, -1.0, 1.0, 1.0, 1.0, -1.0]
    assert np.isnan(x[4, 0])  # the caller's rows are not changed


def test_stumps_shallow_leaves_and_forests_too_deep_to_complete():
    # a forest of a lone leaf, a stump and a chain deeper than the complete layout allows
    depth = COMPLETE_MAX_DEPTH + 2
    feature, threshold, left, right, value, roots = [-1], [0.0], [0], [0], [0.25], [0]
    roots.append(len(feature))
    feature += [1, -1, -1]
    threshold += [0.5, 0, 0]
    left += [2, 2, 3]
    right += [3, 2, 3]
    value += [0.0, 0.5, -0.5]
    roots.append(len(feature))
    for d in range(depth):  # node i: x0 <= d -> leaf, else the next split
        i = len(feature)
        feature += [0, -1]
        threshold += [float(d), 0.0]
        left += [i + 1, i + 1]
        right += [i + 2, i + 1]
        value += [0.0, float(d + 1)]
    feature.append(-1)
    threshold.append(0.0)
    left.append(len(feature) - 1)
    right.append(len(feature) - 1)
    value.append(100.0)
    n = len(feature)
    mean = np.array(value) * 0.5
    deep = Forest(feature, threshold, [False] * n, left, right, value, mean, roots, 0.1)
    assert deep.depth == depth and deep._levels is None
    x = np.array([[float(v), w] for v in (-1, 0, 0.5, 3, depth - 1, depth, 50) for w in (0.5, 0.6)])
    leaves, raw, contrib = oracle(deep, x)
    assert np.array_equal(deep.leaves(x), leaves)
    assert np.allclose(deep.raw(x), raw, rtol=0, atol=1e-12)
    assert np.allclose(deep.contributions(x), contrib, rtol=0, atol=1e-12)
    # the same trees without the chain fit the complete layout and give the same answers
    shallow = Forest(feature[:4], threshold[:4], [False] * 4, left[:4], right[:4], value[:4], mean[:4], roots[:2], 0.1)
    assert shallow._levels is not None and shallow.depth == 1
    leaves, raw, contrib = oracle(shallow, x)
    assert np.array_equal(shallow.leaves(x), leaves)
    assert np.allclose(shallow.raw(x), raw, rtol=0, atol=1e-12)
    assert np.allclose(shallow.contributions(x), contrib, rtol=0, atol=1e-12)
    assert shallow.raw(np.zeros((0, 2))).shape == (0,)
    assert shallow.contributions(np.zeros((0, 2))).shape == (0, 2)
